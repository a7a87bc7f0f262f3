// The job list: GET /jobs pages (status filter, page size, the API's "next" links), refreshed every
// few seconds while a job on the page is queued or running; below it the newest uploaded affinity
// runs. Two succeeded jobs or uploaded runs can be compared.
import { api, badge, duration, escapeHtml, header, progressBar, when } from "/dashboard/static/api.js";

header("jobs");
const REFRESH_MS = 2000;
const rows = document.getElementById("rows");
const statusSelect = document.getElementById("status");
const limitSelect = document.getElementById("limit");
const compareButton = document.getElementById("compare");
const params = new URLSearchParams(location.search);
statusSelect.value = params.get("status") || "";
let pages = [];      // URLs of the pages before the current one (for "Newer")
let current = null;  // URL of the current page
let next = null;
let timer = null;
const selected = new Set();

function firstPage() {
  const query = new URLSearchParams({ limit: limitSelect.value });
  if (statusSelect.value) query.set("status", statusSelect.value);
  return `/jobs?${query}`;
}

function row(job) {
  const active = job.status === "queued" || job.status === "running";
  const eta = job.status === "running" ? duration(job.progress.eta_seconds) : "—";
  const run = job.timings.run_seconds ?? (job.timings.started_at && active ? (Date.now() - Date.parse(job.timings.started_at)) / 1000 : null);
  const check = job.status === "succeeded"
    ? `<input type="checkbox" data-id="${escapeHtml(job.id)}" ${selected.has(job.id) ? "checked" : ""} aria-label="select for comparison">` : "";
  return `<tr data-job="${escapeHtml(job.id)}"><td>${check}</td>
    <td class="id"><a href="/dashboard/jobs/${encodeURIComponent(job.id)}">${escapeHtml(job.id.slice(0, 8))}</a></td>
    <td>${escapeHtml(job.dataset)}</td><td>${escapeHtml(job.methods.join(", "))}</td>
    <td>${badge(job.status)}</td><td>${progressBar(job)}</td><td>${eta}</td>
    <td>${when(job.timings.created_at)}</td><td>${duration(run)}</td></tr>`;
}

async function load(url) {
  clearTimeout(timer);
  const page = await api(url);
  current = url;
  next = page.next;
  rows.innerHTML = page.items.length ? page.items.map(row).join("") : `<tr><td colspan="9" class="note">No jobs${statusSelect.value ? ` with status ${escapeHtml(statusSelect.value)}` : ""}.</td></tr>`;
  document.getElementById("older").disabled = !next;
  document.getElementById("newer").disabled = pages.length === 0;
  const first = page.offset + 1;
  document.getElementById("count").textContent = page.items.length
    ? `${first}–${page.offset + page.items.length} of ${page.total}` : `${page.total} jobs`;
  if (page.items.some((j) => j.status === "queued" || j.status === "running"))
    timer = setTimeout(() => load(current).catch(show), REFRESH_MS);
}

async function loadRuns() {
  const page = await api("/affinity-runs?limit=20").catch(() => null);
  if (!page?.items?.length) return;
  document.getElementById("runs-panel").hidden = false;
  document.getElementById("runs").innerHTML = page.items.map((run) => `<tr data-run="${escapeHtml(run.id)}">
    <td><input type="checkbox" data-id="${escapeHtml(run.id)}" aria-label="select for comparison"></td>
    <td><a href="/dashboard/runs/${encodeURIComponent(run.id)}">${escapeHtml(run.name)}</a></td><td>${run.tasks.length}</td>
    <td>${escapeHtml(run.methods.join(", "))}</td><td>${run.epochs}</td><td>${when(run.created_at)}</td></tr>`).join("");
}

function show(error) {
  rows.innerHTML = `<tr><td colspan="9"><div class="error">${escapeHtml(error.message)}</div></td></tr>`;
}

function restart() {
  pages = [];
  const query = new URLSearchParams();
  if (statusSelect.value) query.set("status", statusSelect.value);
  history.replaceState(null, "", `/dashboard${query.size ? `?${query}` : ""}`);
  load(firstPage()).catch(show);
}

statusSelect.onchange = restart;
limitSelect.onchange = restart;
document.getElementById("older").onclick = () => { pages.push(current); load(next).catch(show); };
document.getElementById("newer").onclick = () => load(pages.pop()).catch(show);
function select(event) {
  const id = event.target.dataset.id;
  if (!id) return;
  if (event.target.checked) selected.add(id); else selected.delete(id);
  compareButton.disabled = selected.size !== 2;
}
rows.addEventListener("change", select);
document.getElementById("runs").addEventListener("change", select);
compareButton.onclick = () => {
  const [a, b] = [...selected];
  location.href = `/dashboard/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
};
document.addEventListener("visibilitychange", () => { if (!document.hidden && current) load(current).catch(show); });
restart();
loadRuns();

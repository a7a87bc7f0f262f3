// A job's page: status and progress (refreshed while it runs), then per method the affinity heatmap,
// the per-epoch trajectory, the score-versus-budget curve with its trust band, the grouping diagram at
// the budget of the slider, downloads; and the job's log. An uploaded affinity run's page
// (/dashboard/runs/{id}) shows the same results.
import { api, ApiError, badge, downloadLink, duration, escapeHtml, header, progressBar, when } from "/dashboard/static/api.js";
import { budgetCurve, heatmap, markBudget, objectiveTitle, trajectory } from "/dashboard/static/charts.js";
import { groupingDiagram } from "/dashboard/static/grouping.js";
import { curveCsv, jobTasks, loadAffinity, loadCurve, loadSource, matrixCsv, solutionAt, trajectoryCsv } from "/dashboard/static/results.js";

header("jobs");
const REFRESH_MS = 2000;
const jobId = decodeURIComponent(location.pathname.split("/").pop());
const slider = document.getElementById("budget");
const curves = {};
let source = null;
let job = null;
let affinity = null;
let method = null;
let lastLog = null;

function renderHead() {
  const t = job.timings;
  const active = job.status === "queued" || job.status === "running";
  const error = job.error
    ? `<div class="error"><b>${job.status === "failed" ? "Failed" : "Error"}${job.error.field ? ` (${escapeHtml(job.error.field)})` : ""}:</b> ${escapeHtml(job.error.reason)}</div>` : "";
  document.title = `taskgrouper — job ${job.id.slice(0, 8)}`;
  document.getElementById("head").innerHTML = `
    <h1>Job <span style="font-family:var(--mono)">${escapeHtml(job.id)}</span> ${badge(job.status)}</h1>
    <div class="facts">
      <div><span>dataset</span>${escapeHtml(job.dataset)}</div><div><span>methods</span>${escapeHtml(job.methods.join(", "))}</div>
      <div><span>progress</span>${progressBar(job)}</div>
      ${active ? `<div><span>ETA</span>${duration(job.progress.eta_seconds)}</div><div><span>epoch</span>${job.progress.epoch ?? "—"}</div>` : ""}
      <div><span>created</span>${when(t.created_at)}</div><div><span>finished</span>${when(t.finished_at)}</div>
      <div><span>run time</span>${duration(t.run_seconds)}</div><div><span>device</span>${escapeHtml(job.device || "—")}</div>
      <div><span>attempts</span>${job.attempts}</div>
      ${job.status === "succeeded" ? `<div><a href="/dashboard/compare?a=${encodeURIComponent(job.id)}">Compare with another run →</a></div>` : ""}
    </div>${error}`;
}

function renderRunHead() {
  const run = source.run;
  document.title = `taskgrouper — run ${run.name}`;
  document.getElementById("head").innerHTML = `
    <h1>Uploaded affinity run <span style="font-family:var(--mono)">${escapeHtml(run.name)}</span> ${badge("uploaded")}</h1>
    <div class="facts">
      <div><span>id</span>${escapeHtml(run.id)}</div><div><span>tasks</span>${run.tasks.length}</div>
      <div><span>methods</span>${escapeHtml(run.methods.join(", "))}</div><div><span>epochs</span>${run.epochs}</div>
      <div><span>steps</span>${run.steps ?? "—"}</div><div><span>uploaded</span>${when(run.created_at)}</div>
      <div><a href="/dashboard/compare?a=${encodeURIComponent(run.id)}">Compare with another run →</a></div>
    </div>`;
  document.getElementById("log").textContent = "(an uploaded run was measured elsewhere: it has no log here)";
}

async function refresh() {
  source = await loadSource(jobId);
  if (source.kind === "run") {
    renderRunHead();
    await showResults();
    return;
  }
  job = source.job;
  renderHead();
  await refreshLog();
  if (job.status === "queued" || job.status === "running") setTimeout(() => refresh().catch(fail), REFRESH_MS);
  else if (job.status === "succeeded" && !affinity) await showResults();
}

async function refreshLog() {
  const element = document.getElementById("log");
  try {
    const query = lastLog == null ? "" : `?after=${lastLog}`;
    const log = await api(`/jobs/${encodeURIComponent(jobId)}/logs${query}`);
    if (lastLog == null) element.textContent = "";
    for (const entry of log.entries) {
      const line = document.createElement("span");
      line.className = entry.level;
      line.textContent = `${entry.time.replace("T", " ").slice(0, 19)}  #${entry.attempt}  ${entry.level.padEnd(7)} ${entry.step ? `[${entry.step}] ` : ""}${entry.message}\n`;
      element.append(line);
      lastLog = entry.id;
    }
    if (lastLog == null) element.textContent = "(no log entries yet)";
    if (log.truncated && !element.dataset.truncated) { element.dataset.truncated = "1"; element.prepend("(some entries were dropped: an attempt keeps a bounded number)\n"); }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    element.textContent = `(no log available: ${error.message})`;
  }
}

async function showResults() {
  affinity = await loadAffinity(source);
  const methods = source.methods;
  const tabs = document.getElementById("methods");
  tabs.innerHTML = methods.map((m) => `<button data-method="${escapeHtml(m)}">${escapeHtml(m)}</button>`).join("");
  tabs.onclick = (event) => { if (event.target.dataset.method) selectMethod(event.target.dataset.method).catch(fail); };
  document.getElementById("results").hidden = false;
  await selectMethod(methods[0]);
}

async function selectMethod(name) {
  method = name;
  for (const b of document.querySelectorAll("#methods button")) b.classList.toggle("active", b.dataset.method === name);
  const tasks = jobTasks(job, affinity);
  const run = affinity.methods[name];
  const heat = document.getElementById("heatmap");
  const path = document.getElementById("trajectory");
  if (run) {
    heatmap(heat, tasks, run.onto_row_from_column);
    document.getElementById("heatmap-note").textContent = `(${name}, onto row from column)`;
    trajectory(path, tasks, run.trajectory);
  } else {
    Plotly.purge(heat); Plotly.purge(path);
    heat.innerHTML = path.innerHTML = `<p class="note">${escapeHtml(name)} measures networks' losses directly: it has no affinity matrix.</p>`;
    document.getElementById("heatmap-note").textContent = "";
  }
  const curve = curves[name] ??= await loadCurve(jobId, name, tasks.length);
  const feasible = curve.filter((s) => s.networks.length);
  slider.min = feasible.length ? feasible[0].budget : 1;
  slider.max = curve.length ? curve[curve.length - 1].budget : 1;
  slider.step = curve.length > 1 ? curve[1].budget - curve[0].budget : 0.5;
  if (Number(slider.value) < Number(slider.min) || slider.dataset.method !== name) slider.value = Math.min(2, Number(slider.max));
  slider.dataset.method = name;
  await budgetCurve(document.getElementById("curve"), [{ name, curve }], { yTitle: objectiveTitle(name), budget: Number(slider.value) });
  showBudget();
  renderDownloads(tasks, run, curve);
}

function showBudget() {
  const budget = Number(slider.value);
  document.getElementById("budget-value").textContent = `${budget.toFixed(1)} of ${Number(slider.max).toFixed(1)}`;
  groupingDiagram(document.getElementById("diagram"), solutionAt(curves[method], budget) || { budget }, method);
  markBudget(document.getElementById("curve"), budget);
}

function renderDownloads(tasks, run, curve) {
  const box = document.getElementById("downloads");
  box.innerHTML = "";
  const stem = `${jobId.slice(0, 8)}-${method}`;
  const links = [];
  if (run) {
    links.push(downloadLink("affinity matrix (JSON)", `${stem}-affinity.json`, "application/json",
      JSON.stringify({ tasks, onto_row_from_column: run.onto_row_from_column, metadata: run.metadata }, null, 2)));
    links.push(downloadLink("affinity matrix (CSV)", `${stem}-affinity.csv`, "text/csv", matrixCsv(tasks, run.onto_row_from_column)));
    links.push(downloadLink("per-epoch matrices (JSON)", `${stem}-trajectory.json`, "application/json", JSON.stringify({ tasks, trajectory: run.trajectory }, null, 2)));
    links.push(downloadLink("per-epoch matrices (CSV)", `${stem}-trajectory.csv`, "text/csv", trajectoryCsv(tasks, run.trajectory)));
  }
  links.push(downloadLink("groupings at every budget (JSON)", `${stem}-groupings.json`, "application/json",
    JSON.stringify({ [source.kind === "job" ? "job_id" : "run_id"]: jobId, method, curve }, null, 2)));
  links.push(downloadLink("groupings at every budget (CSV)", `${stem}-groupings.csv`, "text/csv", curveCsv(curve)));
  box.append(...links);
}

function fail(error) {
  document.getElementById("head").insertAdjacentHTML("beforeend", `<div class="error">${escapeHtml(error.message)}</div>`);
}

slider.oninput = showBudget;
refresh().catch(fail);

// The dashboard's access to the taskgrouper API: every request carries the API key the user typed
// (kept in this tab's sessionStorage, sent as "Authorization: Bearer"); a 401 asks for a key and
// retries. Where the server requires no key (embedded mode) nothing is asked.
const KEY = "taskgrouper.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let asking = null;  // the pending key prompt, which requests refused meanwhile wait for too

function askForKey(message) {
  asking ??= new Promise((resolve) => {
    let dialog = document.getElementById("login");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "login";
      dialog.innerHTML = `<form method="dialog"><h2>API key</h2>
        <p class="note"></p><input name="key" type="password" autocomplete="off" placeholder="tg_…" required>
        <div style="text-align:right"><button class="primary" type="submit">Sign in</button></div></form>`;
      document.body.append(dialog);
    }
    dialog.querySelector(".note").textContent = message;
    const form = dialog.querySelector("form");
    form.onsubmit = () => {
      sessionStorage.setItem(KEY, form.key.value.trim());
      form.key.value = "";
      renderWho();
      asking = null;
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
  return asking;
}

/** GET (or another method) ``path`` of the API; parsed JSON, or an ApiError with the problem body. */
export async function api(path, options = {}) {
  for (;;) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401) {
      // a request sent before the user entered the current key must not discard that key: retry with it
      if (sessionStorage.getItem(KEY) !== key) continue;
      sessionStorage.removeItem(KEY);
      await askForKey(key ? "That key was refused (unknown, revoked or malformed). Enter another."
                          : "This server requires an API key (taskgrouper create-api-key --project NAME).");
      continue;
    }
    const body = response.status === 204 ? null : await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body || {});
    return body;
  }
}

function renderWho() {
  const who = document.querySelector("header.top .who");
  if (!who) return;
  const key = sessionStorage.getItem(KEY);
  who.innerHTML = key ? `key ${escapeHtml(key.split("_").slice(0, 2).join("_"))}… <button>Sign out</button>` : "";
  const button = who.querySelector("button");
  if (button) button.onclick = () => { sessionStorage.removeItem(KEY); location.reload(); };
}

/** The page header: brand, navigation (``active`` marks the current page), the key in use. */
export function header(active) {
  const top = document.createElement("header");
  top.className = "top";
  const link = (href, name, label) => `<a href="${href}" class="${name === active ? "active" : ""}">${label}</a>`;
  top.innerHTML = `<a class="brand" href="/dashboard">taskgrouper</a><nav>${link("/dashboard", "jobs", "Jobs")}
    ${link("/dashboard/compare", "compare", "Compare")}${link("/docs", "docs", "API docs")}
    ${link("/redoc", "redoc", "API reference")}</nav><span class="who"></span>`;
  document.body.prepend(top);
  renderWho();
}

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** 75 s -> "1 min 15 s"; null -> "—". */
export function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function badge(status) {
  return `<span class="badge ${escapeHtml(status)}">${escapeHtml(status)}</span>`;
}

export function progressBar(job) {
  const pct = Math.round(100 * (job.progress?.fraction ?? 0));
  return `<span class="bar ${escapeHtml(job.status)}"><span style="width:${pct}%"></span></span><span class="pct">${pct}%</span>`;
}

/** ``value`` with ``digits`` significant digits (no "-0"); "—" when missing. */
export function number(value, digits = 3) {
  if (value == null || !isFinite(value)) return "—";
  const rounded = Number(Number(value).toPrecision(digits));
  return String(rounded === 0 ? 0 : rounded);
}

function csvCell(value) {
  const text = value == null ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV text of ``rows`` (arrays) under ``columns``. */
export function toCsv(columns, rows) {
  return [columns, ...rows].map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

/** A link that downloads ``text`` as ``filename`` (made in the browser from data already fetched). */
export function downloadLink(label, filename, type, text) {
  const a = document.createElement("a");
  a.textContent = label;
  a.download = filename;
  a.href = URL.createObjectURL(new Blob([text], { type }));
  return a;
}

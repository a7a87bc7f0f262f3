// Side-by-side comparison of two runs, each "ID:METHOD" where ID is a job's or an uploaded affinity
// run's (an id alone means its first method; with only ?a=ID of a source with two methods, B is its
// second): e.g. the user's own model's uploaded run against the surrogate's job.
import { api, escapeHtml, header } from "/dashboard/static/api.js";
import { budgetCurve, heatmap, markBudget, objectiveTitle, offDiagonalMax } from "/dashboard/static/charts.js";
import { groupingDiagram } from "/dashboard/static/grouping.js";
import { jobTasks, loadAffinity, loadCurve, loadSource, solutionAt, sourceLabel } from "/dashboard/static/results.js";

header("compare");
const slider = document.getElementById("budget");
const pickers = { a: document.getElementById("pick-a"), b: document.getElementById("pick-b") };
const loaded = {};
let runs = {};

async function run(spec) {
  if (loaded[spec]) return loaded[spec];
  const [id, wanted] = spec.split(":");
  const source = await loadSource(id);
  const method = wanted || source.methods[0];
  const affinity = await loadAffinity(source);
  const tasks = jobTasks(source.job, affinity);
  const curve = await loadCurve(id, method, tasks.length);
  return (loaded[spec] = { spec: `${id}:${method}`, source, method, tasks, matrix: affinity.methods[method]?.onto_row_from_column, curve });
}

function label(r) {
  return `${r.method} · ${sourceLabel(r.source)}`;
}

async function options(chosen) {
  const page = await api("/jobs?status=succeeded&limit=100");
  const uploaded = await api("/affinity-runs?limit=100").catch(() => ({ items: [] }));
  const specs = page.items.flatMap((j) => j.methods.map((m) => [`${j.id}:${m}`, `${m} · job ${j.id.slice(0, 8)} · ${j.dataset} · ${new Date(j.timings.created_at).toLocaleString()}`]))
    .concat(uploaded.items.flatMap((r) => r.methods.map((m) => [`${r.id}:${m}`, `${m} · uploaded run ${r.name}`])));
  for (const spec of Object.values(chosen)) if (spec && !specs.some(([s]) => s === spec)) specs.unshift([spec, spec]);
  for (const [side, select] of Object.entries(pickers)) {
    select.innerHTML = `<option value="">choose a run…</option>` + specs.map(([s, text]) => `<option value="${escapeHtml(s)}">${escapeHtml(text)}</option>`).join("");
    select.value = chosen[side] || "";
  }
}

async function render() {
  const [a, b] = [pickers.a.value, pickers.b.value];
  const query = new URLSearchParams();
  if (a) query.set("a", a);
  if (b) query.set("b", b);
  history.replaceState(null, "", `/dashboard/compare?${query}`);
  if (!a || !b) { document.getElementById("compare").hidden = true; return; }
  runs = { a: await run(a), b: await run(b) };
  document.getElementById("compare").hidden = false;
  const zmax = offDiagonalMax(...[runs.a.matrix, runs.b.matrix].filter(Boolean));
  for (const side of ["a", "b"]) {
    const r = runs[side];
    document.getElementById(`title-${side}`).textContent = `${side.toUpperCase()}: ${label(r)}`;
    const element = document.getElementById(`heatmap-${side}`);
    if (r.matrix) heatmap(element, r.tasks, r.matrix, { zmax });
    else { Plotly.purge(element); element.innerHTML = `<p class="note">${escapeHtml(r.method)} has no affinity matrix.</p>`; }
  }
  const last = Math.max(...[runs.a, runs.b].flatMap((r) => r.curve.map((s) => s.budget)));
  slider.max = last;
  slider.step = 0.5;
  const sameObjective = (runs.a.method === "warm_start") === (runs.b.method === "warm_start");
  await budgetCurve(document.getElementById("curve"),
    [{ name: `A: ${label(runs.a)}`, curve: runs.a.curve }, { name: `B: ${label(runs.b)}`, curve: runs.b.curve }],
    { yTitle: sameObjective ? objectiveTitle(runs.a.method) : "objective (A and B measure different things)", budget: Number(slider.value) });
  showBudget();
}

function showBudget() {
  const budget = Number(slider.value);
  document.getElementById("budget-value").textContent = budget.toFixed(1);
  for (const side of ["a", "b"])
    groupingDiagram(document.getElementById(`diagram-${side}`), solutionAt(runs[side].curve, budget) || { budget }, runs[side].method);
  markBudget(document.getElementById("curve"), budget);
}

function fail(error) {
  document.getElementById("message").innerHTML = `<div class="error">${escapeHtml(error.message)}</div>`;
}

async function start() {
  const params = new URLSearchParams(location.search);
  const chosen = { a: params.get("a") || "", b: params.get("b") || "" };
  if (chosen.a && !chosen.b) {
    const first = await run(chosen.a);
    chosen.a = first.spec;
    const other = first.source.methods.find((m) => m !== first.method);
    if (other) chosen.b = `${first.source.id}:${other}`;
  }
  for (const side of ["a", "b"]) if (chosen[side] && !chosen[side].includes(":")) chosen[side] = (await run(chosen[side])).spec;
  await options(chosen);
  pickers.a.onchange = pickers.b.onchange = () => render().catch(fail);
  slider.oninput = showBudget;
  await render();
}

start().catch(fail);

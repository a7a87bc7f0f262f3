// A finished job's results as the dashboard uses them: its affinity document and, per method, its
// grouping curve over the budgets 1..n (steps of 0.5: a half-size single-task network costs 0.5).
import { api, ApiError, toCsv } from "/dashboard/static/api.js";

/** Most budgets the dashboard asks for in one curve (a server's max_budgets is at least this). */
const MAX_CURVE_BUDGETS = 100;

/** A job or an uploaded affinity run (``POST /affinity-runs``: measured in the user's own training),
 * as the result pages show them: ``{kind, id, methods, job | run}``. */
export async function loadSource(id) {
  try {
    const job = await api(`/jobs/${encodeURIComponent(id)}`);
    return { kind: "job", id, methods: job.methods, job };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  const run = await api(`/affinity-runs/${encodeURIComponent(id)}`);
  return { kind: "run", id, methods: run.methods, run };
}

/** The source's affinity document, in the form of ``GET /jobs/{id}/affinity``. */
export async function loadAffinity(source) {
  if (source.kind === "job") return api(`/jobs/${encodeURIComponent(source.id)}/affinity`);
  const run = source.run;
  const methods = Object.fromEntries(run.methods.map((m) => [m, {
    onto_row_from_column: run.matrices[m], trajectory: run.trajectories?.[m] || [], metadata: run.metadata }]));
  return { tasks: run.tasks, methods };
}

/** "job 1a2b3c4d · digits-attributes" or "uploaded run my-resnet". */
export function sourceLabel(source) {
  return source.kind === "job" ? `job ${source.id.slice(0, 8)} · ${source.job.dataset}` : `uploaded run ${source.run.name}`;
}

export function jobTasks(job, affinity) {
  if (affinity?.tasks?.length) return affinity.tasks;
  return (job?.spec?.tasks || []).map((t) => t.name);
}

/** ``[first, last, step]`` of the curve's budgets for ``n`` tasks. */
export function budgetRange(n) {
  const last = Math.max(n, 1);
  const step = 2 * last - 1 <= MAX_CURVE_BUDGETS ? 0.5 : Math.max(1, Math.ceil((last - 1) / (MAX_CURVE_BUDGETS - 1)));
  return [1, last, step];
}

export async function loadCurve(jobId, method, n) {
  const [first, last, step] = budgetRange(n);
  const query = new URLSearchParams({ job_id: jobId, method, budgets: `${first}:${last}:${step}` });
  return (await api(`/groupings?${query}`)).curve;
}

/** The solution of ``curve`` at ``budget`` (the largest budget not above it). */
export function solutionAt(curve, budget) {
  let best = null;
  for (const s of curve) if (s.budget <= budget + 1e-9) best = s;
  return best;
}

export function matrixCsv(tasks, matrix) {
  return toCsv(["onto \\ from", ...tasks], matrix.map((row, i) => [tasks[i], ...row]));
}

export function trajectoryCsv(tasks, epochs) {
  const rows = [];
  epochs.forEach((matrix, e) => matrix.forEach((row, i) => row.forEach((v, j) => rows.push([e + 1, tasks[i], tasks[j], v]))));
  return toCsv(["epoch", "onto", "from", "affinity"], rows);
}

/** One row per chosen network of every budget (an infeasible budget: one row without a network). */
export function curveCsv(curve) {
  const rows = [];
  for (const s of curve) {
    const o = s.trust?.objective;
    const base = [s.budget, s.status, s.objective, o?.low, o?.high, s.trust?.gain?.value, s.trust?.win_rate];
    if (!s.networks.length) rows.push([...base, "", "", "", "", ""]);
    s.networks.forEach((n, k) => rows.push([...base, k + 1, n.size, n.cost, n.trains.join(" "), n.serves.join(" ")]));
  }
  return toCsv(["budget", "status", "objective", "objective_low", "objective_high", "gain", "win_rate",
                "network", "size", "cost", "trains", "serves"], rows);
}

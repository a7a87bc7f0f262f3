// The dashboard's plots, drawn by plotly.js (the global Plotly, from the installed plotly package).
const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 13, color: "#1d2330" };
const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
export const COLOURS = ["#2f5bd3", "#d9822b", "#1f8a4c", "#b83280", "#6b46c1", "#c53030", "#2c7a7b", "#975a16"];

function layout(extra) {
  return { font: FONT, paper_bgcolor: "#fff", plot_bgcolor: "#fff", margin: { l: 70, r: 20, t: 36, b: 60 }, ...extra };
}

/** The largest |value| off the diagonal of square matrices (the diagonal, a task's affinity with itself,
 * is not used by the selection and would wash the colours out). */
export function offDiagonalMax(...matrices) {
  let most = 0;
  for (const matrix of matrices)
    matrix.forEach((row, i) => row.forEach((v, j) => { if (i !== j && v != null && isFinite(v)) most = Math.max(most, Math.abs(v)); }));
  return most || 1;
}

/** A power of ten that brings ``limit`` to 1..1000 (affinities are often ~1e-3): ``[factor, label]``. */
function scale(limit) {
  const exponent = Math.floor(Math.log10(limit));
  if (exponent >= -1 && exponent <= 2) return [1, ""];
  const sup = String(exponent).replace("-", "⁻").replace(/\d/g, (d) => "⁰¹²³⁴⁵⁶⁷⁸⁹"[d]);
  return [10 ** -exponent, ` (×10${sup})`];
}

/** Heatmap of an affinity matrix (``onto_row_from_column``): diverging colours centred on 0 over the
 * off-diagonal range (or ``zmax``), blue where the column task helps the row task, red where it hurts;
 * the diagonal greyed out; values in the cells (scaled by a power of ten named on the colour bar) and
 * the exact values on hover. */
export function heatmap(element, tasks, matrix, { zmax, title } = {}) {
  const limit = zmax ?? offDiagonalMax(matrix);
  const [factor, unit] = scale(limit);
  const z = matrix.map((row, i) => row.map((v, j) => (i === j || v == null ? null : v * factor)));
  const n = tasks.length;
  const trace = {
    type: "heatmap", z, x: tasks, y: tasks, zmin: -limit * factor, zmax: limit * factor, zmid: 0,
    colorscale: "RdBu", reversescale: true, xgap: 2, ygap: 2, hoverongaps: false,
    customdata: matrix, texttemplate: n <= 12 ? "%{z:.2f}" : "", textfont: { size: n <= 8 ? 12 : 10 },
    colorbar: { title: { text: `affinity onto row task<br>from column task${unit}`, side: "right" }, thickness: 16, outlinewidth: 0 },
    hovertemplate: "onto <b>%{y}</b> from <b>%{x}</b><br>affinity %{customdata:.4g}<extra></extra>",
  };
  const diagonal = tasks.map((_, i) => ({
    type: "rect", xref: "x", yref: "y", x0: i - 0.5, x1: i + 0.5, y0: i - 0.5, y1: i + 0.5,
    fillcolor: "#e4e7ec", line: { width: 0 }, layer: "below",
  }));
  return Plotly.react(element, [trace], layout({
    title: title ? { text: title, font: { size: 14 } } : undefined,
    margin: { l: 130, r: 20, t: title ? 40 : 16, b: 100 },
    xaxis: { title: { text: "from task (column)" }, tickangle: -35, showgrid: false, type: "category" },
    yaxis: { title: { text: "onto task (row)" }, autorange: "reversed", showgrid: false, type: "category" },
    shapes: diagonal,
}), CONFIG);
}

/** Per-epoch trajectory: for each task, the mean affinity onto it from the other tasks at each epoch. */
export function trajectory(element, tasks, epochs) {
  const traces = tasks.map((task, i) => ({
    type: "scatter", mode: epochs.length > 1 ? "lines+markers" : "markers", name: task,
    x: epochs.map((_, e) => e + 1),
    y: epochs.map((matrix) => {
      const others = (matrix?.[i] || []).filter((v, j) => j !== i && v != null && isFinite(v));
      return others.length ? others.reduce((a, b) => a + b, 0) / others.length : null;
    }),
    line: { color: COLOURS[i % COLOURS.length], width: 2 },
    hovertemplate: `<b>${task}</b> epoch %{x}<br>mean affinity onto it %{y:.5f}<extra></extra>`,
  }));
  return Plotly.react(element, traces, layout({
    xaxis: { title: { text: "epoch" }, dtick: 1, zeroline: false },
    yaxis: { title: { text: "mean affinity onto the task" }, zeroline: true, zerolinecolor: "#aab" },
    legend: { orientation: "h", y: -0.22 },
    margin: { l: 70, r: 20, t: 16, b: 90 },
  }), CONFIG);
}

/** Score-versus-budget curves: per series ``{name, curve}`` (GroupingCurve.curve), the objective at each
 * budget, its trust interval as a band, and the one all-task network's value as a dashed line. */
export function budgetCurve(element, series, { yTitle, budget } = {}) {
  const traces = [];
  series.forEach(({ name, curve }, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const solved = curve.filter((s) => s.objective != null);
    const x = solved.map((s) => s.budget);
    const band = solved.filter((s) => s.trust);
    if (band.length) {
      traces.push({ type: "scatter", mode: "lines", x: band.map((s) => s.budget), y: band.map((s) => s.trust.objective.high),
        line: { width: 0, shape: "hv" }, hoverinfo: "skip", showlegend: false });
      traces.push({ type: "scatter", mode: "lines", x: band.map((s) => s.budget), y: band.map((s) => s.trust.objective.low),
        fill: "tonexty", fillcolor: colour + "26", line: { width: 0, shape: "hv" }, name: `${name}: 95% interval`, hoverinfo: "skip" });
    }
    traces.push({
      type: "scatter", mode: "lines+markers", name, x, y: solved.map((s) => s.objective),
      line: { color: colour, width: 2.5, shape: "hv" }, marker: { size: 7 },
      customdata: solved.map((s) => [s.networks.length, s.trust ? `[${s.trust.objective.low.toFixed(4)}, ${s.trust.objective.high.toFixed(4)}]` : "n/a"]),
      hovertemplate: `<b>${name}</b> budget %{x}<br>objective %{y:.5f}<br>interval %{customdata[1]}<br>%{customdata[0]} networks<extra></extra>`,
    });
    const allTask = solved.find((s) => s.trust?.all_task)?.trust.all_task;
    if (allTask)
      traces.push({ type: "scatter", mode: "lines", x: [Math.min(...x), Math.max(...x)], y: [allTask.value, allTask.value],
        line: { color: colour, dash: "dash", width: 1.5 }, name: `${name}: one all-task network`,
        hovertemplate: `one all-task network %{y:.5f}<extra></extra>` });
  });
  return Plotly.react(element, traces, layout({
    xaxis: { title: { text: "inference budget (cost of the chosen networks)" }, dtick: 0.5, zeroline: false },
    yaxis: { title: { text: yTitle || "objective" }, zeroline: false },
    legend: { orientation: "h", y: -0.25 },
    margin: { l: 90, r: 20, t: 16, b: 100 },
    shapes: budget == null ? [] : [budgetMarker(budget)],
  }), CONFIG);
}

function budgetMarker(budget) {
  return { type: "line", xref: "x", yref: "paper", x0: budget, x1: budget, y0: 0, y1: 1, line: { color: "#1d2330", width: 1.5, dash: "dot" } };
}

/** Move the chosen-budget marker of a :func:`budgetCurve` plot. */
export function markBudget(element, budget) {
  return Plotly.relayout(element, { shapes: [budgetMarker(budget)] });
}

/** The objective's label for a method: affinity methods maximise total affinity; warm_start minimises
 * the total validation loss relative to each task's single-task network. */
export function objectiveTitle(method) {
  return method === "warm_start" ? "relative total loss (lower is better)" : "total affinity (higher is better)";
}

// The grouping diagram: one box per chosen network, its tasks as chips (filled: the network serves the
// task; outlined: trained on it only), its size and cost, and the predicted value of what it serves.
import { escapeHtml, number } from "/dashboard/static/api.js";

/** Render ``solution`` (a SolutionOut: networks, per_task, objective, trust) into ``element``. */
export function groupingDiagram(element, solution, method) {
  if (!solution || solution.status === "infeasible" || !solution.networks?.length) {
    const least = solution?.min_budget != null ? ` (the cheapest covering costs ${solution.min_budget})` : "";
    element.innerHTML = `<p class="note">No grouping fits budget ${escapeHtml(solution?.budget)}${escapeHtml(least)}.</p>`;
    return;
  }
  const trust = solution.trust;
  const spent = solution.networks.reduce((sum, n) => sum + n.cost, 0);
  const gain = trust?.gain
    ? `<span>gain over one all-task network <b>${number(trust.gain.value)}</b> [${number(trust.gain.low)}, ${number(trust.gain.high)}], better in <b>${Math.round(100 * trust.win_rate)}%</b> of resamples</span>`
    : `<span class="note">no trust report (needs ≥ 2 complete epochs or bootstrap draws)</span>`;
  const boxes = solution.networks.map((network, k) => {
    const interval = trust?.networks?.[k];
    const chips = network.trains.map((task) => {
      const serves = network.serves.includes(task);
      const score = serves && solution.per_task?.[task] != null ? `<small>${number(solution.per_task[task])}</small>` : "";
      return `<span class="chip ${serves ? "serves" : ""}" data-task="${escapeHtml(task)}">${escapeHtml(task)}${score}</span>`;
    }).join("");
    return `<div class="network ${network.size === "half" ? "half" : ""}" style="flex-grow:${network.trains.length}">
      <div class="head"><b>Network ${k + 1}</b><span>${escapeHtml(network.size || "full")} · cost ${network.cost.toFixed(1)}</span></div>
      <div class="tasks">${chips}</div>
      <div class="foot">trains ${network.trains.length}, serves ${network.serves.length}${interval ? ` · value ${number(interval.value)} [${number(interval.low)}, ${number(interval.high)}]` : ""}</div>
    </div>`;
  }).join("");
  element.innerHTML = `<div class="summary">
      <span>budget <b>${Number(solution.budget).toFixed(1)}</b></span><span>spent <b>${spent.toFixed(1)}</b></span>
      <span>${solution.networks.length} network${solution.networks.length === 1 ? "" : "s"}</span>
      <span>objective <b>${number(solution.objective)}</b>${trust ? ` [${number(trust.objective.low)}, ${number(trust.objective.high)}]` : ""}</span>
      ${gain}</div>
    <div class="diagram" data-networks="${solution.networks.length}">${boxes}</div>
    <div class="legend"><span class="chip serves">task</span> served by the network (its score) ·
      <span class="chip">task</span> trained on only · dashed box: half-size network${method === "warm_start" ? " · scores are losses" : ""}</div>`;
}

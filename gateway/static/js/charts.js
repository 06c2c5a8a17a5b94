// Dashboard charts drawn by Chart.js (installed from the npm registry by `make`, served by
// the gateway at /static/vendor/chart.umd.min.js, which sets `window.Chart`). Chart.js
// paints text on a canvas, so API text (campaign names) never becomes markup; the same
// figures also go into a table (text nodes only) for screen readers and for a gateway
// whose node_modules was never installed.

import { el } from "./dom.js";

const COLOURS = ["#1d4ed8", "#15803d", "#b45309", "#b91c1c", "#7c3aed", "#0e7490", "#be185d", "#4b5563"];
const NEGATIVE = "#b91c1c";

let warned = false;

/** Chart.js when its script loaded, otherwise null (said once on the browser console). */
export function chartLibrary() {
  if (window.Chart) return window.Chart;
  if (!warned) {
    warned = true;
    console.warn("Chart.js is not loaded (/static/vendor/chart.umd.min.js): run `make` to install it; showing tables.");
  }
  return null;
}

/** A colour for the n-th series. */
export function colour(index) {
  return COLOURS[index % COLOURS.length];
}

function figuresTable(title, labels, datasets) {
  const head = el("tr", {}, el("th", {}, ""), datasets.map((d) => el("th", {}, d.label)));
  const rows = labels.map((label, i) => el("tr", {}, el("th", {}, label), datasets.map((d) => el("td", {}, d.data[i] ?? "n/a"))));
  return el("table", { class: "chart-figures" }, el("caption", {}, title), el("thead", {}, head), el("tbody", {}, rows));
}

/**
 * A figure for one chart: `type` "line" or "bar", one label per x position and datasets
 * [{label, data: number[]}]. Returns {figure, draw}: call draw() once the figure is in the
 * document (Chart.js sizes the canvas from its parent).
 */
export function chartFigure(title, type, labels, datasets) {
  const caption = el("figcaption", {}, title);
  if (!labels.length || !datasets.length) {
    return { figure: el("figure", {}, caption, el("p", { class: "hint" }, `${title}: no data in this range.`)), draw() {} };
  }
  const Chart = chartLibrary();
  const table = figuresTable(title, labels, datasets);
  if (!Chart) {
    const missing = el("p", { class: "hint" }, "Chart library not installed: the figures as a table.");
    return { figure: el("figure", {}, caption, missing, table), draw() {} };
  }
  const canvas = el("canvas", { role: "img", "aria-label": title });
  const figure = el("figure", {}, caption, el("div", { class: "chart-canvas" }, canvas),
    el("details", {}, el("summary", {}, "Figures"), table));
  const styled = datasets.map((d, index) => ({
    ...d,
    borderColor: colour(index),
    backgroundColor:
      type === "bar" && datasets.length === 1 ? d.data.map((v, i) => (v < 0 ? NEGATIVE : colour(i))) : colour(index),
    pointRadius: 3,
  }));
  const draw = () =>
    new Chart(canvas, {
      type,
      data: { labels, datasets: styled },
      options: {
        animation: false, // the figures are the point, and screenshots stay stable
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true } },
        plugins: { legend: { display: datasets.length > 1 } },
      },
    });
  return { figure, draw };
}

/** Destroy the Chart.js instances under `root` before its canvases are thrown away. */
export function destroyCharts(root) {
  const Chart = window.Chart;
  if (!Chart) return;
  for (const canvas of root.querySelectorAll("canvas")) Chart.getChart(canvas)?.destroy();
}

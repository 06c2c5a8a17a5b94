// Tiny SVG charts built with DOM APIs. No chart library is installed and the console has
// no network at run time, so charts are drawn here: lines over days and labelled bars.
// Labels go through textContent only, so API text (campaign names) never becomes markup.

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1d4ed8", "#15803d", "#b45309", "#b91c1c", "#7c3aed", "#0e7490", "#be185d", "#4b5563"];
const WIDTH = 560;
const HEIGHT = 220;
const PAD = { left: 56, right: 24, top: 12, bottom: 30 };

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** A colour for the n-th series. */
export function colour(index) {
  return COLOURS[index % COLOURS.length];
}

function frame(title, max) {
  const svg = svgEl("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: "img",
    class: "chart",
  });
  svg.append(svgEl("title", {}, title));
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  for (const share of [0, 0.5, 1]) {
    const y = PAD.top + plotHeight * (1 - share);
    svg.append(svgEl("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }));
    const label = max * share;
    svg.append(
      svgEl("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" },
        Number.isInteger(label) ? label : label.toFixed(2)),
    );
  }
  return svg;
}

function legend(names) {
  const list = document.createElement("ul");
  list.className = "legend";
  names.forEach((name, index) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(index);
    item.append(swatch, document.createTextNode(name));
    list.append(item);
  });
  return list;
}

function empty(title) {
  const note = document.createElement("p");
  note.className = "hint";
  note.textContent = `${title}: no data in this range.`;
  return note;
}

/** Lines over `labels` (days): `series` is [{name, values: number[]}]. A figure element. */
export function lineChart(title, labels, series) {
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption);
  const values = series.flatMap((s) => s.values);
  if (!labels.length || !series.length) {
    figure.append(empty(title));
    return figure;
  }
  const max = Math.max(1, ...values);
  const svg = frame(title, max);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (labels.length === 1 ? plotWidth / 2 : (plotWidth * i) / (labels.length - 1));
  const y = (v) => PAD.top + plotHeight * (1 - v / max);
  for (const [i, label] of labels.entries()) {
    if (labels.length <= 8 || i % Math.ceil(labels.length / 8) === 0) {
      svg.append(svgEl("text", { x: x(i), y: HEIGHT - 10, "text-anchor": "middle", class: "tick" }, label.slice(5)));
    }
  }
  series.forEach((s, index) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const line = svgEl("polyline", { points, fill: "none", stroke: colour(index), "stroke-width": 2, "data-series": s.name });
    line.append(svgEl("title", {}, s.name));
    svg.append(line);
    s.values.forEach((v, i) => {
      const dot = svgEl("circle", { cx: x(i), cy: y(v), r: 3, fill: colour(index), "data-value": v });
      dot.append(svgEl("title", {}, `${s.name} ${labels[i]}: ${v}`));
      svg.append(dot);
    });
  });
  figure.append(svg, legend(series.map((s) => s.name)));
  return figure;
}

/** One bar per item: `items` is [{label, value}]; negative values hang below zero. */
export function barChart(title, items) {
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption);
  if (!items.length) {
    figure.append(empty(title));
    return figure;
  }
  const max = Math.max(1, ...items.map((item) => Math.abs(item.value)));
  const svg = frame(title, max);
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotWidth / items.length;
  const base = PAD.top + plotHeight;
  items.forEach((item, index) => {
    const height = (plotHeight * Math.abs(item.value)) / max;
    const bar = svgEl("rect", {
      x: PAD.left + slot * index + slot * 0.15,
      y: base - height,
      width: slot * 0.7,
      height: Math.max(height, 0.5),
      fill: item.value < 0 ? "#b91c1c" : colour(index),
      "data-value": item.value,
    });
    bar.append(svgEl("title", {}, `${item.label}: ${item.value}`));
    svg.append(bar);
    svg.append(
      svgEl("text", { x: PAD.left + slot * (index + 0.5), y: HEIGHT - 10, "text-anchor": "middle", class: "tick" },
        item.label.length > 18 ? `${item.label.slice(0, 17)}…` : item.label),
    );
  });
  figure.append(svg);
  return figure;
}

// Building DOM nodes. Text from the API only ever goes through textContent or attribute
// setters, never innerHTML, so a customer named `<img onerror=…>` stays text.

import { ApiError } from "./api.js";

/** Create an element: el("td", {class: "x", dataset: {id: "1"}}, "text", childNode). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, ...children);
  return node;
}

/** Append children; strings and numbers become text nodes. */
export function append(node, ...children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A local, readable time for an ISO 8601 string (or an empty string). */
export function when(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? String(iso) : at.toLocaleString();
}

/** Whole days from today to a YYYY-MM-DD date (negative when past). */
export function daysUntil(isoDate) {
  const [y, m, d] = String(isoDate).split("-").map(Number);
  const due = Date.UTC(y, m - 1, d);
  const now = new Date();
  const today = Date.UTC(now.getFullYear(), now.getMonth(), now.getDate());
  return Math.round((due - today) / 86400000);
}

/** Show a short message in the page's alert area. */
export function flash(message, kind = "error") {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = kind;
  box.hidden = !message;
}

/** A 422's errors as list items: the exact path (less `strip`), then the server's message. */
export function errorItems(error, strip = "") {
  const items = error instanceof ApiError ? error.problem.errors || [] : [];
  if (!items.length) return [el("li", {}, error.message)];
  return items.map((item) => el("li", {},
    el("code", { class: "path" }, String(item.field).startsWith(strip) ? item.field.slice(strip.length) : item.field),
    ": ", item.message));
}

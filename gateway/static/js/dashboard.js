// The admin dashboard: a date range, charts (Chart.js, see charts.js) from
// /api/reports/series and /savings, and the figures of one day from /api/reports/daily.

import { api, qs } from "./api.js";
import { chartFigure, destroyCharts } from "./charts.js";
import { el } from "./dom.js";

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function sumContacts(days) {
  const totals = new Map();
  for (const day of days) {
    for (const [channel, outcomes] of Object.entries(day.contacts || {})) {
      for (const [outcome, count] of Object.entries(outcomes)) {
        const key = `${channel} ${outcome}`;
        totals.set(key, (totals.get(key) || 0) + Number(count || 0));
      }
    }
  }
  return [...totals].filter(([, value]) => value > 0);
}

function statusSeries(days) {
  const names = new Set(days.flatMap((day) => Object.keys(day.customers_by_status || {})));
  return [...names].sort().map((name) => ({
    label: name,
    data: days.map((day) => Number(day.customers_by_status?.[name] || 0)),
  }));
}

function dailyFigures(daily) {
  const rows = [
    ["Day", `${daily.day}${daily.final ? " (final)" : " (so far)"}`],
    ["Costs", `${daily.costs?.total ?? "0"} ${daily.costs?.currency ?? ""}`.trim()],
    ["Moved back to active", daily.moved_back_to_active ?? 0],
  ];
  for (const [status, count] of Object.entries(daily.customers_by_status || {})) {
    rows.push([`Customers ${status}`, count]);
  }
  return el("dl", { class: "figures" }, rows.map(([k, v]) => el("div", { class: "kv" }, el("dt", {}, k), el("dd", {}, v))));
}

let loading = 0; // only the newest request draws, whatever order the answers come in

/** Fetch the range's reports and draw them. */
export async function loadDashboard() {
  const ticket = ++loading;
  const from = document.getElementById("dash-from").value;
  const to = document.getElementById("dash-to").value;
  const status = document.getElementById("dash-status");
  const box = document.getElementById("dash-charts");
  status.textContent = "Loading…";
  try {
    const [series, savings, daily] = await Promise.all([
      api("GET", `/api/reports/series${qs({ from, to })}`),
      api("GET", `/api/reports/savings${qs({ from, to })}`),
      api("GET", `/api/reports/daily${qs({ date: to })}`),
    ]);
    if (ticket !== loading) return;
    const labels = series.days.map((day) => day.day);
    const currency = series.currency || "";
    const contacts = sumContacts(series.days);
    // A campaign without a deflection source has no net savings: no bar, not a zero.
    const campaigns = savings.campaigns || [];
    const charts = [
      ["chart-statuses", chartFigure("Customers by status", "line", labels, statusSeries(series.days))],
      ["chart-moved-back", chartFigure("Moved back to active", "bar", labels,
        [{ label: "moved back to active", data: series.days.map((day) => Number(day.moved_back_to_active || 0)) }])],
      ["chart-contacts", chartFigure("Contacts by channel and outcome", "bar", contacts.map(([label]) => label),
        [{ label: "contacts", data: contacts.map(([, value]) => value) }])],
      ["chart-costs", chartFigure(`Costs per day (${currency})`, "line", labels,
        [{ label: "cost", data: series.days.map((day) => Number(day.cost)) }])],
      ["chart-savings", chartFigure(`Net savings per campaign (${savings.currency || currency})`, "bar",
        campaigns.map((c) => c.campaign), [{ label: "net savings", data: campaigns.map((c) => (c.net_savings == null ? null : Number(c.net_savings))) }])],
    ];
    destroyCharts(box);
    box.replaceChildren(
      ...charts.map(([id, chart]) => el("div", { id, class: "chart-box" }, chart.figure)),
      el("div", { id: "daily-figures", class: "chart-box" }, el("h3", {}, `The day ${to}`), dailyFigures(daily)),
    );
    for (const [, chart] of charts) chart.draw();
    status.textContent = `${labels.length} days from ${from} to ${to}.`;
  } catch (error) {
    if (ticket !== loading) return;
    status.textContent = "";
    destroyCharts(box);
    box.replaceChildren(el("p", { class: "error", role: "alert" }, error.message));
  }
}

/** Default the range to the last 14 days and wire the form. */
export function initDashboard() {
  const today = new Date();
  const start = new Date(today.getTime() - 13 * 86400000);
  document.getElementById("dash-from").value = isoDay(start);
  document.getElementById("dash-to").value = isoDay(today);
  document.getElementById("dash-range").addEventListener("submit", (event) => {
    event.preventDefault();
    loadDashboard();
  });
}

/** Forget what was drawn (sign-out). */
export function clearDashboard() {
  const box = document.getElementById("dash-charts");
  destroyCharts(box);
  box.replaceChildren();
  document.getElementById("dash-status").textContent = "";
}

// Partners (admin): the service partners allocation may hand contacts to, with their
// capacity per day, cost per contact and eligibility rule. The rule is built with the
// same form builder as a campaign's audience (rulebuilder.js); an empty rule means every
// contact. Only the partners API is used (GET /api/partners, GET/PUT /api/partners/{id}).

import { api, qs } from "./api.js";
import { el, errorItems } from "./dom.js";
import { loadFields, ruleBuilder } from "./rulebuilder.js";

let current = null; // the partner being edited (as the API gave it, or a new one)
let eligibility = null; // the mounted rule builder

const node = (id) => document.getElementById(id);

function conditions(rule) {
  if (!rule || typeof rule !== "object") return 0;
  if ("not" in rule) return conditions(rule.not);
  if ("all" in rule || "any" in rule) return (rule.all || rule.any || []).reduce((n, r) => n + conditions(r), 0);
  return 1;
}

function describeRule(rule) {
  if (!rule || !Object.keys(rule).length) return "every contact";
  const count = conditions(rule);
  return `${count} condition${count === 1 ? "" : "s"}`;
}

async function show(partner) {
  const fields = await loadFields();
  current = partner;
  node("partner-editor").hidden = false;
  node("partner-title").textContent = partner.created_at ? `${partner.name || partner.partner_id} (${partner.partner_id})` : `${partner.partner_id} (new)`;
  node("partner-name").value = partner.name ?? "";
  node("partner-capacity").value = partner.capacity_per_day ?? "";
  node("partner-cost").value = partner.cost_per_contact ?? "";
  node("partner-currency").value = partner.currency ?? "UAH";
  node("partner-active").checked = partner.active !== false;
  node("partner-errors").replaceChildren();
  eligibility = ruleBuilder(node("partner-rule"), fields, partner.eligibility, { emptyMeansAnyone: true });
}

async function open(id) {
  node("partners-status").textContent = "";
  try {
    await show(await api("GET", `/api/partners/${encodeURIComponent(id)}`));
  } catch (error) {
    node("partners-status").textContent = error.message;
  }
}

function edited() {
  const capacity = node("partner-capacity").value.trim();
  return {
    name: node("partner-name").value.trim(),
    // Sent as typed: the server says precisely what is wrong with a bad number.
    capacity_per_day: capacity === "" || Number.isNaN(Number(capacity)) ? capacity : Number(capacity),
    cost_per_contact: node("partner-cost").value.trim(),
    currency: node("partner-currency").value.trim().toUpperCase(),
    eligibility: eligibility.value(),
    performance: current.performance ?? {}, // kept as it was: figures come from the CRM
    active: node("partner-active").checked,
  };
}

async function save(event) {
  event.preventDefault();
  node("partner-errors").replaceChildren();
  try {
    const saved = await api("PUT", `/api/partners/${encodeURIComponent(current.partner_id)}`, edited());
    await show(saved);
    node("partners-status").textContent = `Saved ${saved.partner_id}.`;
    loadPartners();
  } catch (error) {
    node("partner-errors").replaceChildren(...errorItems(error));
  }
}

/** Every partner (the list pages through the API's cursor). */
export async function loadPartners() {
  try {
    const rows = [];
    let cursor = null;
    do {
      const page = await api("GET", `/api/partners${qs({ limit: 500, cursor })}`);
      rows.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    node("partners").replaceChildren(...rows.map((p) => el("tr", { dataset: { id: p.partner_id } },
      el("td", {}, el("button", { type: "button", class: "link open-partner", onclick: () => open(p.partner_id) }, p.partner_id)),
      el("td", {}, p.name),
      el("td", {}, p.capacity_per_day),
      el("td", {}, `${p.cost_per_contact} ${p.currency}`),
      el("td", {}, describeRule(p.eligibility)),
      el("td", {}, p.active ? "yes" : "no"))));
  } catch (error) {
    node("partners-status").textContent = error.message;
  }
}

/** Wire the forms once. */
export function initPartners() {
  node("partner-form").addEventListener("submit", save);
  node("partner-new").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = node("partner-new-id").value.trim();
    if (id) show({ partner_id: id, name: "", capacity_per_day: "", cost_per_contact: "", currency: "UAH", eligibility: {}, performance: {}, active: true });
  });
}

/** Forget everything (sign-out). */
export function clearPartners() {
  current = null;
  eligibility = null;
  node("partner-editor").hidden = true;
  node("partners").replaceChildren();
  node("partners-status").textContent = "";
}

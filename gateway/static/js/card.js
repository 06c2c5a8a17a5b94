// The customer card, shared by the screen-pop and the customer page.

import { el, when, daysUntil } from "./dom.js";

/** Why this customer may be calling, most pressing first (plain strings). */
export function reasons(card) {
  const out = [];
  const payment = card.next_payment;
  if (payment) {
    const days = daysUntil(payment.due_date);
    const amount = `${payment.amount} ${payment.currency}`;
    if (days < 0) out.push(`Payment of ${amount} overdue by ${-days} day(s)`);
    else if (days === 0) out.push(`Payment of ${amount} due today`);
    else out.push(`Payment of ${amount} due in ${days} day(s)`);
  }
  for (const task of card.open_tasks || []) {
    out.push(`Open task: ${task.kind}${task.due_at ? ` (due ${when(task.due_at)})` : ""}`);
  }
  const messages = card.last_contacts?.messages || [];
  const recent = messages[0];
  if (recent) {
    const what = recent.template ? `“${recent.template}”` : "a message";
    out.push(`We sent ${what} by ${recent.channel} on ${when(recent.created_at)} (${recent.status})`);
  }
  if (card.consent?.do_not_contact) out.push("Do not contact");
  return out;
}

function row(label, value) {
  if (value === undefined || value === null || value === "") return null;
  return el("div", { class: "kv" }, el("dt", {}, label), el("dd", {}, value));
}

/** The card as a DOM node; `actions` are extra buttons; `currentCall` is left out of
 * the last contacts (the pop's own ringing call). */
export function customerCard(card, actions = [], currentCall = null) {
  const attributes = Object.entries(card.attributes || {}).map(([k, v]) =>
    row(k, typeof v === "object" ? JSON.stringify(v) : String(v)),
  );
  const why = reasons(card);
  const calls = (card.last_contacts?.calls || []).filter((c) => c.id !== currentCall);
  const messages = card.last_contacts?.messages || [];
  return el(
    "article",
    { class: "card", dataset: { customerId: card.id } },
    el("h3", { class: "customer-name" }, card.name),
    el("p", { class: "status" }, el("span", { class: `pill status-${card.status}` }, card.status)),
    why.length
      ? el("div", { class: "why" }, el("h4", {}, "Why they may be calling"),
          el("ul", {}, why.map((text) => el("li", {}, text))))
      : null,
    el(
      "dl",
      {},
      row("Phones", (card.phones || []).join(", ")),
      row("Responsible manager", card.responsible_agent || "—"),
      row("Bonus balance", card.bonus_balance),
      row("Region", card.region),
      row("Products", (card.products || []).join(", ")),
      row("Customer since", when(card.contract_started_at)),
      row("Last activity", when(card.last_activity_at)),
      ...attributes,
    ),
    calls.length || messages.length
      ? el(
          "div",
          { class: "contacts" },
          el("h4", {}, "Last contacts"),
          el(
            "ul",
            {},
            calls.map((c) =>
              el("li", {}, `${when(c.started_at)} · ${c.direction} call · ${c.talk_seconds ?? 0} s` +
                (c.topic ? ` · ${c.topic}` : "")),
            ),
            messages.map((m) => el("li", {}, `${when(m.created_at)} · ${m.channel} · ${m.status}`)),
          ),
        )
      : null,
    actions.length ? el("div", { class: "actions" }, actions) : null,
  );
}

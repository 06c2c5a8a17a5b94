// Customer search (phone in any format, or a name) and the customer page: card,
// click-to-call, and the lifecycle timeline filterable by kind.

import { api, qs } from "./api.js";
import { customerCard } from "./card.js";
import { el, flash, when } from "./dom.js";

const KINDS = ["call", "message", "task", "status_change", "activity", "complaint", "payment"];
let ctx = { call: async () => {} };

/** Wire search and the page; `context.call(customerId)` places a click-to-call. */
export function initCustomers(context) {
  ctx = context;
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    search(document.getElementById("query").value.trim());
  });
}

/** Empty the view (sign-out). */
export function clearCustomers() {
  document.getElementById("results").replaceChildren();
  document.getElementById("customer").replaceChildren();
  document.getElementById("search-status").textContent = "";
}

async function search(query) {
  const status = document.getElementById("search-status");
  const list = document.getElementById("results");
  list.replaceChildren();
  const byPhone = /^[+\d\s()\-.]{5,}$/.test(query);
  try {
    const page = await api("GET", `/api/customers${qs(byPhone ? { phone: query } : { q: query })}`);
    for (const c of page.items) {
      list.append(
        el("li", {},
          el("button", { type: "button", class: "link", onclick: () => openCustomer(c.id) }, c.name),
          ` ${(c.phones || []).join(", ")} · ${c.status}`,
          c.match && c.match !== "exact" ? ` · ${c.match} match` : ""),
      );
    }
    status.textContent = page.items.length ? `${page.items.length} found` : "No customer found.";
  } catch (error) {
    status.textContent = error.message;
  }
}

function describe(item) {
  switch (item.kind) {
    case "call":
      return `${item.direction} call${item.extension ? ` at ${item.extension}` : ""} · ` +
        `${item.disposition || "in progress"} · ${item.talk_seconds ?? 0} s` +
        (item.topic ? ` · topic ${item.topic}` : "");
    case "message":
      return `${item.channel}${item.template ? ` “${item.template}”` : ""} · ${item.status}` +
        (item.reason ? ` (${item.reason})` : "");
    case "task":
      return `task ${item.task_kind} · ${item.status}${item.assignee ? ` · ${item.assignee}` : ""}`;
    case "status_change":
      return `status ${item.from || "—"} → ${item.to}${item.reason ? ` (${item.reason})` : ""}`;
    case "activity":
      return `${item.activity}${item.amount ? ` · ${item.amount}` : ""}`;
    case "complaint":
      return `complaint · ${item.topic}`;
    case "payment":
      return `payment ${item.amount} ${item.currency} due ${item.due_date} · ${item.status}`;
    default:
      return item.kind;
  }
}

/** Show one customer's page. */
export async function openCustomer(customerId) {
  document.dispatchEvent(new CustomEvent("show-view", { detail: "customers" }));
  const target = document.getElementById("customer");
  target.replaceChildren(el("p", { class: "hint" }, "Loading…"));
  let card;
  try {
    card = await api("GET", `/api/customers/${encodeURIComponent(customerId)}`);
  } catch (error) {
    target.replaceChildren(el("p", { class: "error" }, error.message));
    return;
  }
  const filter = el("select", { "aria-label": "Timeline kind", id: "timeline-kind" },
    el("option", { value: "" }, "Everything"),
    KINDS.map((kind) => el("option", { value: kind }, kind.replace("_", " "))));
  const list = el("ol", { class: "timeline", id: "timeline" });
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "Older…");
  const items = [];
  let cursor = null;

  const render = () => {
    const kind = filter.value;
    list.replaceChildren(
      ...items
        .filter((item) => !kind || item.kind === kind)
        .map((item) =>
          el("li", { dataset: { kind: item.kind } },
            el("time", { datetime: item.at }, when(item.at)), " ",
            el("span", { class: `pill kind-${item.kind}` }, item.kind.replace("_", " ")), " ",
            describe(item)),
        ),
    );
    if (!list.children.length) list.append(el("li", { class: "hint" }, "Nothing here yet."));
  };
  const load = async () => {
    try {
      const page = await api("GET",
        `/api/customers/${encodeURIComponent(customerId)}/timeline${qs({ limit: 50, cursor })}`);
      items.push(...page.items);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      render();
    } catch (error) {
      flash(error.message);
    }
  };
  filter.addEventListener("change", render);
  more.addEventListener("click", load);
  target.replaceChildren(
    customerCard(card, [
      el("button", { type: "button", class: "call", onclick: () => ctx.call({ customer_id: card.id }) }, "Call"),
    ]),
    el("div", { class: "timeline-head" }, el("h3", {}, "Timeline"), el("label", {}, "Show ", filter)),
    list,
    more,
  );
  await load();
}

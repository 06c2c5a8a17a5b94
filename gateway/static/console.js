// Placeholder console: token sign-in kept in memory only, customer search, health badge.
// Everything from the API is written with textContent, never innerHTML (no injection).
let token = "";

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

async function showHealth() {
  const badge = document.getElementById("health");
  try {
    const health = await (await fetch("/health")).json();
    badge.textContent = health.status;
    badge.className = `badge ${health.status}`;
  } catch {
    badge.textContent = "unreachable";
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = document.getElementById("token").value.trim();
  document.getElementById("status").textContent = "Token set.";
});

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = document.getElementById("query").value.trim();
  const status = document.getElementById("status");
  const table = document.getElementById("results");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  const param = /^[+\d\s()\-.]{5,}$/.test(query) ? "phone" : "q";
  try {
    const page = await api(`/api/customers?${param}=${encodeURIComponent(query)}`);
    for (const customer of page.items) {
      const row = document.createElement("tr");
      cell(row, customer.name);
      cell(row, (customer.phones || []).join(", "));
      cell(row, customer.status);
      cell(row, customer.match || "");
      body.appendChild(row);
    }
    table.hidden = page.items.length === 0;
    status.textContent = page.items.length ? "" : "No customer found.";
  } catch (error) {
    table.hidden = true;
    status.textContent = error.message;
  }
});

showHealth();
setInterval(showHealth, 15000);

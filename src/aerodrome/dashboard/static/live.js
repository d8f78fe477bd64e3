// Live parts of the dashboard, over server-sent events: an app's machine table (redrawn whole), a machine's
// state badge (read from the same table), and a machine's log lines (appended). Without JavaScript the pages
// still show everything as of their load.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const table = document.querySelector("tbody#machines[data-live]");
  if (table) {
    new EventSource(table.dataset.live).addEventListener("machines", (e) => { table.innerHTML = e.data; });
  }
  const state = document.querySelector("#state[data-live]");
  if (state) {
    new EventSource(state.dataset.live).addEventListener("machines", (e) => {
      const rows = document.createElement("tbody");
      rows.innerHTML = e.data;
      const row = rows.querySelector(`tr[data-state][id="row-${state.dataset.machine}"]`);
      const now = row ? row.dataset.state : "destroyed";
      state.textContent = now;
      state.className = `state state-${now}`;
    });
  }
  const logs = document.querySelector("#logs[data-live]");
  if (logs) {
    new EventSource(logs.dataset.live).addEventListener("lines", (e) => {
      const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(document.createTextNode(e.data));
      if (atEnd) logs.scrollTop = logs.scrollHeight;
    });
  }
});

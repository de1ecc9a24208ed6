// The admin's Model installs page: each install's row follows its progress live, from the
// "install" events of /ws/generations/ (the requester's stream), and from the installs API
// for installs another staff member started (every 2 s while any is queued or running).
import { reconnectDelay, wsUrl } from "./http.js";

const table = document.getElementById("installs");

function size(bytes) {
  if (bytes == null) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function show(install) {
  const row = table.querySelector(`[data-install-id="${install.id}"]`);
  if (!row) return false;
  row.querySelector('[data-field="status"]').textContent = install.status;
  const bar = row.querySelector('[data-field="bar"]');
  bar.max = install.bytes_total || 1;
  bar.value = install.bytes_done;
  let text = size(install.bytes_done);
  if (install.bytes_total != null) text += ` of ${size(install.bytes_total)}`;
  if (install.bytes_per_second) text += `, ${size(install.bytes_per_second)}/s`;
  if (install.seconds_left != null) text += `, ${Math.ceil(install.seconds_left)} s left`;
  row.querySelector('[data-field="progress"]').textContent = text;
  row.querySelector('[data-field="error"]').textContent = install.error || "";
  if (install.licence) {
    const cell = row.querySelector('[data-field="licence"]');
    const nc = install.licence.commercial === false ? " (non-commercial)" : "";
    cell.textContent = install.licence.name + nc;
  }
  if (!["queued", "running"].includes(install.status)) {
    row.querySelector('[data-field="cancel"]')?.closest("form").remove();
  }
  return true;
}

function connect() {
  const socket = new WebSocket(wsUrl("/ws/generations/"));
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "install") show(message);
  };
  socket.onclose = (event) => setTimeout(connect, reconnectDelay(event, 2000));
}

async function poll() {
  const active = [...table.querySelectorAll('[data-field="status"]')].some((cell) =>
    ["queued", "running"].includes(cell.textContent),
  );
  if (active) {
    const response = await fetch(table.dataset.api, { credentials: "same-origin" });
    if (response.ok) (await response.json()).installs.forEach(show);
  }
  setTimeout(poll, 2000);
}

connect();
poll();

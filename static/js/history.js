// Live status badges on the history page, from /ws/generations/; a tile shows its first
// output once the generation has succeeded.
import { reconnectDelay, wsUrl } from "./http.js";
import { queuedText, setBadge } from "./status-badge.js";

// A queued tile says its place in line and its wait, as the studio does.
function showStatus(tile, message) {
  const badge = tile.querySelector("[data-status]");
  setBadge(badge, message.status);
  if (message.status === "queued") badge.textContent = queuedText(message);
}

for (const tile of document.querySelectorAll("[data-queue-position]")) {
  const { queuePosition, etaSeconds } = tile.dataset;
  showStatus(tile, {
    status: "queued",
    queue_position: queuePosition ? Number(queuePosition) : null,
    eta_seconds: etaSeconds ? Number(etaSeconds) : null,
  });
}

function connect() {
  const socket = new WebSocket(wsUrl("/ws/generations/"));
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type !== "status") return;
    const tile = document.querySelector(`[data-generation-id="${message.id}"]`);
    if (!tile) {
      document.getElementById("history-new")?.removeAttribute("hidden");
      return;
    }
    showStatus(tile, message);
    const thumbnail = tile.querySelector("img[data-output-src]");
    if (message.status === "succeeded" && thumbnail) {
      thumbnail.srcset = thumbnail.dataset.outputSrcset; // the size a tile is shown at
      thumbnail.src = thumbnail.dataset.outputSrc;
      thumbnail.removeAttribute("data-output-src");
      thumbnail.removeAttribute("data-output-srcset");
    }
  };
  socket.onclose = (event) => setTimeout(connect, reconnectDelay(event, 2000));
}
connect();

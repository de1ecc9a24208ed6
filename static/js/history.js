// Live status badges on the history page, from /ws/generations/; a tile shows its first
// output once the generation has succeeded.
import { reconnectDelay, wsUrl } from "./http.js";
import { setBadge } from "./status-badge.js";

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
    setBadge(tile.querySelector("[data-status]"), message.status);
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

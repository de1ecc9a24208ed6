// Live status badges on the history page, from /ws/generations/.
import { wsUrl } from "./http.js";

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
    const badge = tile.querySelector("[data-status]");
    badge.textContent = message.status;
    badge.className = `badge status-${message.status}`;
  };
  socket.onclose = () => setTimeout(connect, 2000);
}
connect();

// The detail page of one generation. While it is queued or running, it follows
// /ws/generations/<id>/ (the studio's websocket): the status badge, the progress, then the
// outputs with their seeds and download links (the server's markup, from <template>), or the
// error; without a reload, reconnecting if the connection drops. Delete asks first.
import { reconnectDelay, thumbnailUrl, wsUrl } from "./http.js";
import { queuedText, setBadge } from "./status-badge.js";

const card = document.querySelector("[data-generation-id]");
const id = card.dataset.generationId;
const badge = card.querySelector("[data-status]");
const progress = document.getElementById("detail-progress");
const errorBox = document.getElementById("detail-error");
let finished = !["queued", "running"].includes(badge.textContent.trim());

function showProgress(percent, text) {
  progress.hidden = false;
  progress.querySelector("progress").value = percent;
  progress.querySelector("[data-progress-text]").textContent = text;
}

function stop() {
  finished = true;
  progress.hidden = true;
}

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = false;
}

function renderOutputs(images, metadata) {
  if (card.querySelector("[data-output]")) return; // rendered by the server already
  const template = document.getElementById("output-figure").content.firstElementChild;
  const seeds = metadata?.seeds || [];
  images.forEach((address, position) => {
    // The page's own origin (behind a TLS proxy the socket may name http://).
    const url = new URL(address, location.href).pathname;
    const index = url.match(/\/images\/(\d+)\.png$/)?.[1] ?? String(position);
    const figure = template.cloneNode(true);
    figure.querySelector("[data-output-link]").href = url;
    figure.querySelector("[data-output-download]").href = url;
    const image = figure.querySelector("[data-output-image]");
    image.src = thumbnailUrl(url);
    image.alt = `Output ${index}`;
    figure.querySelector("[data-output-index]").textContent = index;
    figure.querySelector("[data-output-seed]").textContent = seeds[position] ?? "-";
    if (metadata?.width) figure.querySelector("[data-output-size]").textContent = `${metadata.width}×${metadata.height}`;
    document.getElementById("detail-images").append(figure);
  });
}

// The Upscale form of a job that finished while the page was open: one option per output.
function showUpscale(count) {
  const form = document.getElementById("upscale-form");
  if (!form || !count) return;
  const select = document.getElementById("upscale-index");
  select.replaceChildren(...Array.from({ length: count }, (_, i) => new Option(String(i), String(i))));
  select.closest("label").hidden = count < 2;
  form.hidden = false;
}

function seconds(value) {
  return value == null ? "-" : value.toFixed(2);
}

function succeeded(message) {
  stop();
  setBadge(badge, "succeeded");
  const metadata = message.metadata || {};
  renderOutputs(message.images || [], metadata);
  showUpscale((message.images || []).length);
  if (metadata.seed != null) card.querySelector("[data-seed-used]").textContent = metadata.seed;
  if (metadata.engine) {
    const model = metadata.model ? ` (${metadata.model})` : "";
    card.querySelector("[data-engine]").textContent = `${metadata.engine}${model}`;
  }
  const timings = metadata.timings;
  if (timings) {
    card.querySelector("[data-timings]").textContent =
      `queue ${seconds(timings.queue)}, inference ${seconds(timings.inference)}, total ${seconds(timings.total)}`;
  }
}

function ended(status, error) {
  stop();
  setBadge(badge, status);
  if (error) showError(error);
}

// After the last step the worker encodes and stores the result: said, not "100%".
const stepText = (message) => (message.total && message.step >= message.total
  ? "Saving the result…"
  : `Step ${message.step} / ${message.total} · ${message.percent}%`);

function handle(message) {
  if (message.type === "status") {
    if (message.status === "queued") {
      setBadge(badge, "queued");
      showProgress(0, queuedText(message));
    } else if (message.status === "running") {
      setBadge(badge, "running");
      showProgress(message.percent || 0, message.total ? stepText(message) : "Running");
    } else if (message.status === "succeeded") {
      // The snapshot on connect carries the images; a later status follows "completed".
      if (message.images) succeeded(message);
      else setBadge(badge, "succeeded");
    } else if (message.status === "failed" || message.status === "cancelled") {
      ended(message.status, message.error);
    }
  } else if (message.type === "progress") {
    showProgress(message.percent, stepText(message));
  } else if (message.type === "completed") {
    succeeded(message);
  } else if (message.type === "failed") {
    ended("failed", message.message || "The generation failed.");
  } else if (message.type === "cancelled") {
    ended("cancelled");
  } else if (message.type === "deleted") {
    ended("deleted", "This generation was deleted.");
  }
}

function connect() {
  const socket = new WebSocket(wsUrl(`/ws/generations/${id}/`));
  socket.onmessage = (event) => {
    handle(JSON.parse(event.data));
    if (finished) socket.close();
  };
  // Dropped before the end: reconnect; the snapshot on connect catches up.
  socket.onclose = (event) => {
    if (!finished) setTimeout(connect, reconnectDelay(event, 1000));
  };
}

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

if (!finished) connect();

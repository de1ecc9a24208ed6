// The studio: image in, mask drawn or uploaded, generate with live progress, result out.

import { MaskEditor } from "./mask-editor.js";
import { postForm, postJson, wsUrl } from "./http.js";

const $ = (id) => document.getElementById(id);
const root = $("studio");
const MAX_BYTES = Number(root.dataset.maxBytes);
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const state = {
  imageBlob: null,     // the input as sent to the server
  imageUrl: null,      // object URL of the input, for the before / after view
  maskMode: "draw",    // "draw" or "upload"
  uploadedMask: null,  // File
  uploadInvert: false,
  generationId: null,
  socket: null,
  finished: false,
};

const editor = new MaskEditor({
  viewport: $("viewport"),
  stage: $("stage"),
  imageCanvas: $("image-canvas"),
  overlayCanvas: $("overlay-canvas"),
  onChange: () => scheduleOverlay(),
  onZoom: (zoom) => { $("zoom-value").value = `${Math.round(zoom * 100)}%`; },
});

// ----- errors next to their fields -------------------------------------------------------
function showErrors(errors, message) {
  clearErrors();
  let placed = false;
  for (const [field, messages] of Object.entries(errors || {})) {
    const slot = document.querySelector(`[data-error-for="${field}"]`);
    if (slot) { slot.textContent = messages.join(" "); placed = true; }
  }
  if (!placed && message) document.querySelector('[data-error-for="non_field_errors"]').textContent = message;
}

function clearErrors(field) {
  const selector = field ? `[data-error-for="${field}"]` : "[data-error-for]";
  document.querySelectorAll(selector).forEach((el) => { el.textContent = ""; });
}

// ----- the image -------------------------------------------------------------------------
async function loadImage(blob) {
  clearErrors("image");
  if (!["image/png", "image/jpeg", "image/webp"].includes(blob.type)) {
    showErrors({ image: ["The image must be a JPEG, PNG or WebP file."] });
    return;
  }
  if (blob.size > MAX_BYTES) {
    showErrors({ image: [`The image is larger than ${MAX_BYTES / 1048576} MB.`] });
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  } catch {
    showErrors({ image: ["This file could not be read as an image."] });
    return;
  }
  state.imageBlob = blob;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(blob);
  $("dropzone").hidden = true;
  $("editor").hidden = false;
  editor.load(bitmap);
  if (state.uploadedMask) await useUploadedMask(state.uploadedMask);
  scheduleOverlay();
}

$("image-input").addEventListener("change", (e) => e.target.files[0] && loadImage(e.target.files[0]));
const dropzone = $("dropzone");
dropzone.addEventListener("dragover", (e) => { e.preventDefault(); dropzone.classList.add("over"); });
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
dropzone.addEventListener("drop", (e) => {
  e.preventDefault();
  dropzone.classList.remove("over");
  if (e.dataTransfer.files[0]) loadImage(e.dataTransfer.files[0]);
});
window.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) loadImage(item.getAsFile());
});
$("change-image").addEventListener("click", () => { $("editor").hidden = true; $("dropzone").hidden = false; });

// ----- mask: drawing ---------------------------------------------------------------------
function setMaskMode(mode) {
  state.maskMode = mode;
  $("mode-draw").setAttribute("aria-pressed", String(mode === "draw"));
  $("mode-upload").setAttribute("aria-pressed", String(mode === "upload"));
  $("draw-tools").hidden = mode !== "draw";
  $("upload-tools").hidden = mode !== "upload";
  editor.enabled = mode === "draw";
  scheduleOverlay();
}
$("mode-draw").addEventListener("click", () => setMaskMode("draw"));
$("mode-upload").addEventListener("click", () => setMaskMode("upload"));

function setBrush(size) {
  const value = Math.max(1, Math.min(100, Math.round(size)));
  editor.brushSize = value;
  $("brush-size").value = value;
  $("brush-size-value").value = value;
}
$("brush-size").addEventListener("input", (e) => setBrush(Number(e.target.value)));
function setTool(tool) {
  editor.tool = tool;
  for (const name of ["brush", "eraser", "select"]) {
    $(`tool-${name}`).setAttribute("aria-pressed", String(tool === name));
  }
}
$("tool-select").addEventListener("click", () => setTool("select"));

// Click-to-select: the server selects the connected region of similar colour (flood fill).
editor.onSelect = async ({ x, y }) => {
  clearErrors("mask");
  const form = new FormData();
  form.append("image", state.imageBlob, "image");
  form.append("method", "flood");
  form.append("point", JSON.stringify([Math.round(x), Math.round(y)]));
  form.append("tolerance", "32");
  form.append("mask_mode", "white_inpaints");
  const response = await postForm("/api/masks/generate", form);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showErrors(body.errors, body.message);
    return;
  }
  editor.addSelection(await createImageBitmap(await response.blob()));
};
$("tool-brush").addEventListener("click", () => setTool("brush"));
$("tool-eraser").addEventListener("click", () => setTool("eraser"));
$("undo").addEventListener("click", () => editor.undo());
$("redo").addEventListener("click", () => editor.redo());
$("clear").addEventListener("click", () => editor.clear());
$("invert").addEventListener("click", () => editor.invert());
$("zoom-in").addEventListener("click", () => editor.zoomBy(1.25));
$("zoom-out").addEventListener("click", () => editor.zoomBy(0.8));
$("zoom-fit").addEventListener("click", () => editor.fit());

window.addEventListener("keydown", (e) => {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName) || $("editor").hidden) return;
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && key === "z") {
    e.preventDefault();
    if (e.shiftKey) editor.redo(); else editor.undo();
  } else if ((e.ctrlKey || e.metaKey) && key === "y") {
    e.preventDefault();
    editor.redo();
  } else if (e.key === "[") {
    setBrush(editor.brushSize - (editor.brushSize > 10 ? 5 : 1));
  } else if (e.key === "]") {
    setBrush(editor.brushSize + (editor.brushSize >= 10 ? 5 : 1));
  } else if (key === "b") {
    setTool("brush");
  } else if (key === "e") {
    setTool("eraser");
  } else if (key === "s") {
    setTool("select");
  }
});

// ----- mask: upload ----------------------------------------------------------------------
async function isPng(file) {
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  return PNG_MAGIC.every((byte, i) => head[i] === byte);
}

async function useUploadedMask(file) {
  clearErrors("mask");
  if (file.size > MAX_BYTES) {
    showErrors({ mask: [`The mask is larger than ${MAX_BYTES / 1048576} MB.`] });
    return false;
  }
  if (!(await isPng(file))) {
    showErrors({ mask: ["The mask must be a PNG file."] });
    return false;
  }
  state.uploadedMask = file;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, 128 / Math.max(bitmap.width, bitmap.height));
  const thumb = document.createElement("canvas");
  thumb.width = Math.round(bitmap.width * scale);
  thumb.height = Math.round(bitmap.height * scale);
  thumb.getContext("2d").drawImage(bitmap, 0, 0, thumb.width, thumb.height);
  $("mask-thumb").src = thumb.toDataURL("image/png");
  $("mask-thumb").hidden = false;
  scheduleOverlay();
  return true;
}

$("mask-input").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file && !(await useUploadedMask(file))) {
    e.target.value = "";
    state.uploadedMask = null;
    $("mask-thumb").hidden = true;
    scheduleOverlay();
  }
});
$("mask-invert").addEventListener("click", () => {
  state.uploadInvert = !state.uploadInvert;
  $("mask-invert").setAttribute("aria-pressed", String(state.uploadInvert));
  scheduleOverlay();
});

// ----- the overlay: the server computes the effective mask (one rule, in the engine) ------
async function currentMask() {
  if (state.maskMode === "draw") {
    if (!editor.hasPaint()) return null;
    return { blob: await editor.toBlob(), mode: "white_inpaints", invert: false };
  }
  if (!state.uploadedMask) return null;
  return { blob: state.uploadedMask, mode: "black_inpaints", invert: state.uploadInvert };
}

let overlayTimer = null;
let overlayRequest = 0;
function scheduleOverlay() {
  clearTimeout(overlayTimer);
  overlayTimer = setTimeout(refreshOverlay, 120);
}

async function refreshOverlay() {
  if (!editor.width) return;
  const request = ++overlayRequest;
  const mask = await currentMask();
  if (!mask) { editor.showEffective(null); return; }
  const form = new FormData();
  form.append("mask", mask.blob, "mask.png");
  form.append("width", editor.width);
  form.append("height", editor.height);
  form.append("mask_mode", mask.mode);
  form.append("invert_mask", mask.invert);
  form.append("mask_blur", $("mask_blur").value || 0);
  form.append("mask_grow", $("mask_grow").value || 0);
  const response = await postForm("/api/masks/effective", form);
  if (request !== overlayRequest) return; // a newer change is on its way
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showErrors(body.errors, body.message);
    editor.showEffective(null);
    return;
  }
  clearErrors("mask");
  const bitmap = await createImageBitmap(await response.blob());
  if (request === overlayRequest) {
    editor.showEffective(bitmap);
    $("overlay-canvas").dataset.ready = String(request);
  }
}
for (const id of ["mask_blur", "mask_grow"]) $(id).addEventListener("change", scheduleOverlay);

// ----- settings ---------------------------------------------------------------------------
function engineChanged() {
  const classical = $("engine").value === "classical";
  $("classical-note").hidden = !classical;
  for (const id of ["denoising_strength", "num_inference_steps", "guidance_scale"]) {
    $(id).closest(".field").classList.toggle("muted", classical);
  }
}
$("engine").addEventListener("change", engineChanged);
engineChanged();
$("denoising_strength").addEventListener("input", (e) => { $("denoising_value").value = e.target.value; });
$("seed-random").addEventListener("change", (e) => { $("seed").disabled = e.target.checked; });

// ----- generate, progress, cancel --------------------------------------------------------
$("generate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  if (!state.imageBlob) { showErrors({ image: ["Choose an image first."] }); return; }
  const mask = await currentMask();
  const outpaint = outpaintSides();
  if (!mask && !outpaint) {
    showErrors({ mask: [state.maskMode === "draw" ? "Paint the area to regenerate first (or outpaint)." : "Choose a mask PNG first (or outpaint)."] });
    return;
  }
  const form = new FormData();
  form.append("image", state.imageBlob, "image");
  if (mask) {
    form.append("mask", mask.blob, "mask.png");
    form.append("mask_mode", mask.mode);
    form.append("invert_mask", mask.invert);
  }
  if (outpaint) form.append("outpaint", JSON.stringify(outpaint));
  for (const name of ["engine", "prompt", "negative_prompt", "denoising_strength", "num_inference_steps",
    "guidance_scale", "samples", "mask_blur", "mask_grow", "inpaint_area", "padding", "scheduler"]) {
    form.append(name, $(name).value);
  }
  form.append("seed", $("seed-random").checked ? "-1" : $("seed").value);
  form.append("wait", "false");
  $("generate").disabled = true;
  try {
    const response = await postForm("/api/img2img", form);
    const body = await response.json();
    if (!response.ok) { showErrors(body.errors, body.message); return; }
    startWatching(body.id);
  } catch (error) {
    showErrors({}, `The request failed: ${error}`);
  } finally {
    $("generate").disabled = false;
  }
});

function outpaintSides() {
  const sides = {};
  for (const side of ["left", "right", "top", "bottom"]) {
    const value = Number($(`outpaint_${side}`).value || 0);
    if (value) sides[side] = value;
  }
  return Object.keys(sides).length ? sides : null;
}

function setProgress(percent, text) {
  $("progress").value = percent;
  $("progress").dataset.percent = String(percent);
  $("progress-text").textContent = text;
}

function startWatching(id) {
  state.generationId = id;
  state.finished = false;
  $("result-panel").hidden = true;
  $("progress-panel").hidden = false;
  $("cancel").disabled = false;
  $("preview").hidden = true;
  setProgress(0, "Queued");
  connect(id);
}

function connect(id) {
  if (state.socket) state.socket.close();
  const socket = new WebSocket(wsUrl(`/ws/generations/${id}/`));
  state.socket = socket;
  socket.onmessage = (event) => handleMessage(id, JSON.parse(event.data));
  socket.onclose = () => {
    // Dropped before the end: reconnect; the snapshot on connect catches up.
    if (state.generationId === id && !state.finished) setTimeout(() => connect(id), 1000);
  };
}

function handleMessage(id, message) {
  if (id !== state.generationId) return;
  if (message.type === "progress") {
    const eta = message.eta_seconds != null ? ` · about ${Math.ceil(message.eta_seconds)} s left` : "";
    setProgress(message.percent, `Step ${message.step} / ${message.total} · ${message.percent}%${eta}`);
    if (message.preview) { $("preview").src = message.preview; $("preview").hidden = false; }
  } else if (message.type === "status") {
    if (message.status === "queued") {
      setProgress(0, message.queue_position ? `Queued (position ${message.queue_position})` : "Queued");
    } else if (message.status === "running") {
      setProgress(message.percent || 0, message.total ? `Step ${message.step} / ${message.total}` : "Running");
    } else if (message.status === "succeeded" && message.images) {
      finish(id, message);
    } else if (message.status === "failed") {
      fail(message.error || "The generation failed.");
    } else if (message.status === "cancelled") {
      cancelled();
    }
  } else if (message.type === "completed") {
    finish(id, message);
  } else if (message.type === "failed") {
    fail(message.message);
  } else if (message.type === "cancelled") {
    cancelled();
  } else if (message.type === "deleted") {
    fail("The generation was deleted.");
  }
}

function stopWatching() {
  state.finished = true;
  if (state.socket) state.socket.close();
  $("cancel").disabled = true;
}

function fail(text) {
  stopWatching();
  setProgress(0, `Failed: ${text}`);
}

function cancelled() {
  stopWatching();
  setProgress(0, "Cancelled");
}

$("cancel").addEventListener("click", async () => {
  if (!state.generationId) return;
  const response = await postJson(`/api/generations/${state.generationId}/cancel/`);
  if (response.ok) cancelled();
  else setProgress(0, (await response.json()).message);
});

// ----- result ------------------------------------------------------------------------------
function finish(id, message) {
  stopWatching();
  setProgress(100, "Done");
  $("progress-panel").hidden = true;
  const images = message.images;
  const seeds = message.metadata.seeds || [message.metadata.seed];
  $("result-panel").hidden = false;
  $("before").src = state.imageUrl;
  $("result-link").href = `/history/${id}/`;
  const strip = $("samples-strip");
  strip.replaceChildren();
  const show = (index) => {
    $("after").src = images[index];
    $("download").href = images[index];
    $("download").setAttribute("download", `dreamlayer-${id}-${index}.png`);
    $("result-seed").value = seeds[index];
  };
  images.forEach((url, index) => {
    if (images.length < 2) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "thumb";
    button.setAttribute("aria-label", `Show sample ${index + 1}`);
    const img = document.createElement("img");
    img.src = url;
    img.alt = `Sample ${index + 1}`;
    button.append(img);
    button.addEventListener("click", () => show(index));
    strip.append(button);
  });
  show(0);
}

$("compare-slider").addEventListener("input", (e) => {
  $("after").style.clipPath = `inset(0 0 0 ${e.target.value}%)`;
});
$("after").style.clipPath = "inset(0 0 0 50%)";

$("use-as-input").addEventListener("click", async () => {
  const response = await fetch($("after").src, { credentials: "same-origin" });
  const blob = await response.blob();
  await loadImage(new File([blob], "result.png", { type: "image/png" }));
  $("result-panel").hidden = true;
});

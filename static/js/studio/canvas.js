// The studio's input side: the image, the mask (drawn or uploaded), its overlay (the
// effective mask, computed by the server), and the settings that change what the form shows.
// Nothing happens on import: studio.js calls initCanvas() (each section's bind…() below, in
// the page's order).

import { addShortcut } from "../keys.js";
import { MaskEditor } from "../mask-editor.js";
import { postForm } from "../http.js";
import { $, FILL_ENGINES, FILL_ENGINE_UNUSED, clearErrors, say, showErrors } from "./dom.js";

const root = $("studio");
const MAX_BYTES = Number(root.dataset.maxBytes);
// The server's size rule (uploads.check_dimensions; the page hands over its settings):
// pixels in all and the longest side.
const MAX_PIXELS = Number(root.dataset.maxPixels);
const MAX_SIDE = Number(root.dataset.maxSide);
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export const input = {
  imageBlob: null,     // the input as sent to the server
  imageUrl: null,      // object URL of the input, for the before / after view
  maskMode: "draw",    // "draw" or "upload"
  uploadedMask: null,  // File
  uploadInvert: false,
};

// The phone layout gives the viewport no height of its own: the editor sizes it to the image.
const phone = window.matchMedia("(max-width: 800px)");
const syncLayout = () => { $("viewport").dataset.autoHeight = String(phone.matches); };

// The mask editor (made by initCanvas).
export let editor = null;

export function initCanvas() {
  // The regenerated area's colour, the server's (the legend's swatch uses it too).
  root.style.setProperty("--regenerated", `rgba(${root.dataset.tint}, ${root.dataset.tintOpacity})`);
  syncLayout();
  editor = new MaskEditor({
    viewport: $("viewport"),
    stage: $("stage"),
    imageCanvas: $("image-canvas"),
    overlayCanvas: $("overlay-canvas"),
    cursor: $("brush-cursor"),
    tint: root.dataset.tint.split(",").map(Number),
    tintOpacity: Number(root.dataset.tintOpacity),
    // A message about the old mask is stale; the layers' panel shows the mask painted.
    onChange: () => { say(""); scheduleOverlay(); root.dispatchEvent(new Event("studio:mask")); },
    onZoom: (zoom) => { $("zoom-value").value = `${Math.round(zoom * 100)}%`; },
    onHistory: () => {
      $("undo").disabled = !editor.canUndo;
      $("redo").disabled = !editor.canRedo;
    },
  });
  // A resize keeps what the user zoomed to; a fitted view is fitted again.
  window.addEventListener("resize", () => { syncLayout(); if (editor.fitted) editor.fit(); });
  bindImage();
  bindDrawing();
  bindSelect();
  bindKeys();
  bindMaskFiles();
  bindOverlay();
  bindOutpaint();
  bindSettings();
}

// ----- the image -------------------------------------------------------------------------
// Pictures the browser shows itself; a phone's HEIC / HEIF it cannot decode: the server turns
// those into an upright PNG, which is then the input.
const BROWSER_TYPES = ["image/png", "image/jpeg", "image/webp", "image/avif"];
const isPhonePhoto = (blob) => ["image/heic", "image/heif"].includes(blob.type) || /\.hei[cf]$/i.test(blob.name || "");

async function asPng(blob) {
  const form = new FormData();
  form.append("image", blob, blob.name || "photo.heic");
  say("Reading the photo…");
  const response = await postForm("/api/images/png", form);
  say("");
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showErrors(body.errors || { image: [body.message || "This file could not be read as an image."] }, body.message);
    return null;
  }
  const name = (blob.name || "photo").replace(/\.[^.]*$/, "") + ".png";
  return new File([await response.blob()], name, { type: "image/png" });
}

export async function loadImage(blob) {
  clearErrors("image");
  hideTooLarge();
  if (blob.size > MAX_BYTES) {
    showErrors({ image: [`The image is larger than ${MAX_BYTES / 1048576} MB.`] });
    return false;
  }
  // What the page shows: the picture itself, or for a HEIC the server's upright PNG of it. The
  // file sent with a job stays the original (a phone's PNG would be several times larger).
  let shown = blob;
  if (isPhonePhoto(blob)) {
    shown = await asPng(blob);
    if (!shown) return false;
  } else if (!BROWSER_TYPES.includes(blob.type)) {
    showErrors({ image: ["The image must be a JPEG, PNG, WebP, HEIC or AVIF file."] });
    return false;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(shown, { imageOrientation: "from-image" });
  } catch {
    showErrors({ image: ["This file could not be read as an image."] });
    return false;
  }
  // Over the server's size limit: refused now, before anything is painted (the server would
  // refuse it at Generate), with a copy that fits offered instead.
  if (refuseTooLarge(shown, bitmap.width, bitmap.height)) {
    bitmap.close();
    return false;
  }
  input.imageBlob = blob;
  input.imageName = blob.name || "image";
  if (input.imageUrl) URL.revokeObjectURL(input.imageUrl);
  input.imageUrl = URL.createObjectURL(shown);
  $("dropzone").hidden = true;
  $("editor").hidden = false;
  $("layers-panel").hidden = input.maskMode !== "draw";
  showCanvas();
  say("");
  editor.load(bitmap);
  root.dispatchEvent(new Event("studio:image")); // (the layers were the old picture's)
  fitBrushTo(bitmap.width, bitmap.height);
  newObject();
  if (input.uploadedMask) await useUploadedMask(input.uploadedMask);
  scheduleOverlay();
  return true;
}

// ----- a picture over the size limit: refused at load, a smaller copy offered ------------
const count = (n) => n.toLocaleString("en-US");
let tooLarge = null; // the refused picture (its blob and the size of the copy offered)

// The largest size of the picture's shape the server takes.
function fittingSize(width, height) {
  const scale = Math.min(1, Math.sqrt(MAX_PIXELS / (width * height)), MAX_SIDE / Math.max(width, height));
  let [w, h] = [Math.max(1, Math.floor(width * scale)), Math.max(1, Math.floor(height * scale))];
  while (w * h > MAX_PIXELS) [w, h] = [w - 1, Math.max(1, Math.floor(((w - 1) * height) / width))];
  return [w, h];
}

function refuseTooLarge(blob, width, height) {
  const tooMany = width * height > MAX_PIXELS;
  if (!tooMany && Math.max(width, height) <= MAX_SIDE) return false;
  const [w, h] = fittingSize(width, height);
  tooLarge = { blob, width: w, height: h };
  const limit = tooMany ? `${count(MAX_PIXELS)} pixels in all` : `${count(MAX_SIDE)} pixels on a side`;
  $("image-too-large-text").textContent = `This picture is ${width} × ${height} pixels `
    + `(${count(width * height)} in all); the limit is ${limit}. It was not opened: use a copy `
    + `at ${w} × ${h}, or a smaller picture.`;
  $("downscale-image").textContent = `Use a copy at ${w} × ${h}`;
  $("downscale-image").disabled = false;
  $("image-too-large").hidden = false;
  $("image-too-large").scrollIntoView({ block: "nearest" });
  return true;
}

function hideTooLarge() {
  tooLarge = null;
  $("image-too-large").hidden = true;
}

// The refused picture drawn at the size offered: JPEG for a JPEG (a photo's PNG at 16
// megapixels would be over the byte limit), PNG otherwise unless that is too large.
async function useSmallerCopy() {
  if (!tooLarge) return;
  const { blob, width, height } = tooLarge;
  $("downscale-image").disabled = true;
  say("Making a smaller copy…");
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [width, height];
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const encode = (type, quality) => new Promise((done) => canvas.toBlob(done, type, quality));
  let copy = blob.type === "image/png" ? await encode("image/png") : null;
  if (!copy || copy.size > MAX_BYTES) copy = await encode("image/jpeg", 0.92);
  canvas.width = canvas.height = 0; // its memory back now
  say("");
  const stem = (blob.name || "image").replace(/\.[^.]*$/, "");
  const extension = copy.type === "image/png" ? "png" : "jpg";
  await loadImage(new File([copy], `${stem}-${width}x${height}.${extension}`, { type: copy.type }));
}

function bindImage() {
  $("downscale-image").addEventListener("click", useSmallerCopy);
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
  $("change-image").addEventListener("click", () => {
    $("editor").hidden = true;
    $("layers-panel").hidden = true; // (until a picture is open again)
    $("dropzone").hidden = false;
  });
}

// ----- mask: drawing ---------------------------------------------------------------------
function setMaskMode(mode) {
  input.maskMode = mode;
  document.querySelector(".zoombar .keys").hidden = mode !== "draw";
  $("mode-draw").setAttribute("aria-pressed", String(mode === "draw"));
  $("mode-upload").setAttribute("aria-pressed", String(mode === "upload"));
  $("draw-tools").hidden = mode !== "draw";
  $("upload-tools").hidden = mode !== "upload";
  $("mask-download").hidden = mode !== "draw"; // what is painted; an uploaded mask is a file already
  $("layers-panel").hidden = mode !== "draw" || $("editor").hidden; // layers are painted
  editor.enabled = mode === "draw";
  scheduleOverlay();
}

// The largest brush, in image pixels: a tenth of the picture's longer side (at least 100), so a
// 4000 px photo's brush covers as much of it as a 1000 px one's.
let brushLimit = 100;
function fitBrushTo(width, height) {
  brushLimit = Math.max(100, Math.round(Math.max(width, height) / 10));
  $("brush-size").max = brushLimit;
  setBrush(editor.brushSize);
}
function setBrush(size) {
  const value = Math.max(1, Math.min(brushLimit, Math.round(size)));
  editor.brushSize = value;
  $("brush-size").value = value;
  $("brush-size-value").value = value;
}
function setTool(tool) {
  editor.tool = tool;
  for (const name of ["brush", "eraser", "lasso", "rectangle", "select"]) {
    $(`tool-${name}`).setAttribute("aria-pressed", String(tool === name));
  }
  $("select-field").hidden = tool !== "select";
  if ($("select-more")) $("select-more").hidden = tool !== "select"; // what a mask model adds
  $("tolerance-field").hidden = tool !== "select" || $("select-method").value !== "colour";
  $("overlay-canvas").classList.toggle("selecting", ["select", "lasso", "rectangle"].includes(tool));
  newObject();
}

function bindDrawing() {
  $("mode-draw").addEventListener("click", () => setMaskMode("draw"));
  $("mode-upload").addEventListener("click", () => setMaskMode("upload"));
  $("brush-size").addEventListener("input", (e) => setBrush(Number(e.target.value)));
  // The soft brush: hardness (the share of the radius painted at full strength, the rest
  // fading out) and opacity (the strength it paints: gray below 100%).
  for (const name of ["hardness", "opacity"]) {
    $(`brush-${name}`).addEventListener("input", (e) => {
      editor[`brush${name[0].toUpperCase()}${name.slice(1)}`] = Number(e.target.value) / 100;
      $(`brush-${name}-value`).value = e.target.value;
      // Painting gray asks for soft inpainting: switched on, unless the user has set it.
      if (Number(e.target.value) < 100 && !$("soft").dataset.touched) $("soft").checked = true;
    });
  }
  $("soft").addEventListener("change", () => { $("soft").dataset.touched = "true"; });
  $("tool-select").addEventListener("click", () => setTool("select"));
  $("select-method").addEventListener("change", () => setTool("select"));
  $("tool-brush").addEventListener("click", () => setTool("brush"));
  $("tool-eraser").addEventListener("click", () => setTool("eraser"));
  $("tool-lasso").addEventListener("click", () => setTool("lasso"));
  $("tool-rectangle").addEventListener("click", () => setTool("rectangle"));
  $("undo").addEventListener("click", () => editor.undo());
  $("redo").addEventListener("click", () => editor.redo());
  $("clear").addEventListener("click", () => editor.clear());
  $("invert").addEventListener("click", () => editor.invert());
  $("zoom-in").addEventListener("click", () => editor.zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => editor.zoomBy(0.8));
  $("zoom-fit").addEventListener("click", () => editor.fit());
}

// ----- Select: by colour (a flood fill from the point), or an object with a mask model ----
// Object (SAM 2.1): clicks add points, Shift-clicks take away, a drag gives a box; each
// answer replaces the object's last one in the mask (one undo step per object); any other
// edit (a stroke, undo, clear) ends the object. Subject (a background model) and Find (a
// phrase: SAM 3, or GroundingDINO with SAM 2.1) select at once. All run in a selection
// worker; one request at a time, the latest waiting (an object's points accumulate, so the
// latest request holds them all).
let object = { points: [], box: null };
function newObject() {
  editor.endObject();
  object = { points: [], box: null };
}

let inFlight = false;
let waiting = null; // [fields, options] to send when the answer in flight arrives
async function selectWith(fields, options = {}) {
  if (inFlight) { waiting = [fields, options]; return; }
  inFlight = true;
  try {
    await sendSelection(fields, options);
  } finally {
    inFlight = false;
    if (waiting) {
      const [nextFields, nextOptions] = waiting;
      waiting = null;
      selectWith(nextFields, nextOptions);
    }
  }
}

async function sendSelection(fields, { object: isObject = false } = {}) {
  clearErrors("mask");
  const blob = input.imageBlob;
  const form = new FormData();
  form.append("image", blob, "image");
  for (const [name, value] of Object.entries(fields)) {
    form.append(name, typeof value === "string" ? value : JSON.stringify(value));
  }
  form.append("mask_mode", "white_inpaints");
  say("Selecting…");
  const response = await postForm("/api/masks/generate", form);
  say("");
  if (blob !== input.imageBlob) return; // another image since: the answer is for the old one
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showErrors(body.errors, body.message);
    return;
  }
  const bitmap = await createImageBitmap(await response.blob());
  if (fields.method === "flood") {
    editor.addSelection(bitmap);
  } else if (isObject) {
    editor.setObjectSelection(bitmap); // replaces this object's last answer
  } else {
    newObject(); // Subject and Find: one step of their own on top of what is there
    editor.setObjectSelection(bitmap);
    newObject();
  }
}

// A pixel of the image (the edge included) for a pointer position.
const pixel = (value, size) => Math.min(size - 1, Math.max(0, Math.floor(value)));

async function selectAt({ x, y, start, shiftKey }) {
  const inside = (p) => p.x >= 0 && p.y >= 0 && p.x < editor.width && p.y < editor.height;
  if (!inside({ x, y })) return; // the outpaint area
  const [px, py] = [pixel(x, editor.width), pixel(y, editor.height)];
  if ($("select-method").value === "colour") {
    await selectWith({ method: "flood", point: [px, py], tolerance: $("select-tolerance").value });
    return;
  }
  if (Math.hypot(x - start.x, y - start.y) > 4 && inside(start)) {
    const [sx, sy] = [pixel(start.x, editor.width), pixel(start.y, editor.height)];
    object.box = [Math.min(px, sx), Math.min(py, sy), Math.max(px, sx) + 1, Math.max(py, sy) + 1];
  } else {
    object.points.push([px, py, shiftKey ? 0 : 1]);
  }
  const fields = { method: "sam" };
  if (object.points.length) fields.points = object.points;
  if (object.box) fields.box = object.box;
  await selectWith(fields, { object: true });
}

function bindSelect() {
  editor.onObjectEnd = () => { object = { points: [], box: null }; };
  editor.onSelect = selectAt;
  if ($("select-new")) $("select-new").addEventListener("click", newObject);
  if ($("select-subject")) {
    $("select-subject").addEventListener("click", () => input.imageBlob && selectWith({ method: "background" }));
  }
  if ($("select-find")) {
    const find = () => {
      const text = $("select-text").value.trim();
      if (input.imageBlob && text) selectWith({ method: "text", text });
    };
    $("select-find").addEventListener("click", find);
    $("select-text").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); find(); } });
  }
  $("select-tolerance").addEventListener("input", (e) => { $("select-tolerance-value").value = e.target.value; });
}

// ----- the canvas' keys (static/js/keys.js: the table, and keys typed into a field) -------
// They work only while the canvas, not the result, is on screen.
const canvasOnScreen = () => !$("editor").hidden && $("compare").hidden;

function bindKeys() {
  const onCanvas = { when: canvasOnScreen };
  // Space held pans, wherever the focus is (a focused button is never pressed by it).
  addShortcut({
    code: "Space", when: () => editor.width && canvasOnScreen(), preventDefault: true,
    run: () => editor.holdSpace(true), release: () => editor.holdSpace(false),
  });
  addShortcut({ ...onCanvas, key: "z", modifiers: "ctrl", preventDefault: true, run: (e) => (e.shiftKey ? editor.redo() : editor.undo()) });
  addShortcut({ ...onCanvas, key: "y", modifiers: "ctrl", preventDefault: true, run: () => editor.redo() });
  // The brush: by 1 pixel up to 10, by 5 above.
  addShortcut({ ...onCanvas, key: "[", run: () => setBrush(editor.brushSize - (editor.brushSize > 10 ? 5 : 1)) });
  addShortcut({ ...onCanvas, key: "]", run: () => setBrush(editor.brushSize + (editor.brushSize >= 10 ? 5 : 1)) });
  const tools = { b: "brush", e: "eraser", l: "lasso", r: "rectangle", s: "select" };
  for (const [key, tool] of Object.entries(tools)) {
    addShortcut({ ...onCanvas, key, modifiers: "none", run: () => setTool(tool) });
  }
  // N: a new object (Select object).
  addShortcut({ key: "n", modifiers: "none", when: () => canvasOnScreen() && editor.tool === "select", run: newObject });
}

// ----- mask: upload ----------------------------------------------------------------------
async function isPng(file) {
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  return PNG_MAGIC.every((byte, i) => head[i] === byte);
}

// ----- masks you keep: download what is painted, load a mask PNG back as strokes ----------
export async function loadMaskFile(file) {
  clearErrors("mask");
  if (file.size > MAX_BYTES || !(await isPng(file))) {
    showErrors({ mask: ["The mask must be a PNG file of at most " + `${MAX_BYTES / 1048576} MB.`] });
    return false;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    showErrors({ mask: ["This file could not be read as an image."] });
    return false;
  }
  setMaskMode("draw");
  editor.loadMask(bitmap); // one undo step: Undo brings back what was painted before
  return true;
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
  input.uploadedMask = file;
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

function bindMaskFiles() {
  $("mask-download").addEventListener("click", async () => {
    if (!editor.width) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await editor.toBlob());
    link.download = `${(input.imageName || "image").replace(/\.[^.]*$/, "")}-mask-white-regenerates.png`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  $("mask-load-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // the same file may be loaded again
    if (file) await loadMaskFile(file);
  });
  $("mask-input").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file && !(await useUploadedMask(file))) {
      e.target.value = "";
      input.uploadedMask = null;
      $("mask-thumb").hidden = true;
      scheduleOverlay();
    }
  });
  $("mask-invert").addEventListener("click", () => {
    input.uploadInvert = !input.uploadInvert;
    $("mask-invert").setAttribute("aria-pressed", String(input.uploadInvert));
    scheduleOverlay();
  });
}

// ----- the overlay: the server computes the effective mask (one rule, in the engine) ------
// With layers (studio/layers.js) the mask shown is their union: ``source()`` gives it (or
// undefined where there are none: the editor's mask, as before).
let layeredMask = null;
export function useLayeredMask(source) { layeredMask = source; }

export async function currentMask() {
  if (input.maskMode === "draw" && layeredMask) {
    const union = await layeredMask();
    if (union !== undefined) return union;
  }
  if (input.maskMode === "draw") {
    if (!editor.hasPaint()) return null;
    return { blob: await editor.toBlob(), mode: "white_inpaints", invert: false };
  }
  if (!input.uploadedMask) return null;
  return { blob: input.uploadedMask, mode: "black_inpaints", invert: input.uploadInvert };
}

let overlayTimer = null;
let overlayRequest = 0;
export function scheduleOverlay() {
  overlayRequest++; // an answer already on its way is for the old mask or canvas
  $("overlay-canvas").dataset.pending = "true"; // until the answer for this change is drawn
  clearTimeout(overlayTimer);
  overlayTimer = setTimeout(refreshOverlay, 120);
}

async function refreshOverlay() {
  if (!editor.width) return;
  const request = ++overlayRequest;
  const mask = await currentMask();
  const outpaint = outpaintProblem(outpaintSides()) ? null : outpaintSides();
  if (!mask && !outpaint) {
    editor.showEffective(null);
    if (request === overlayRequest) delete $("overlay-canvas").dataset.pending;
    return;
  }
  const form = new FormData();
  if (mask) {
    form.append("mask", mask.blob, "mask.png");
    form.append("mask_mode", mask.mode);
    form.append("invert_mask", mask.invert);
  }
  if (outpaint) form.append("outpaint", JSON.stringify(outpaint));
  form.append("width", editor.width);
  form.append("height", editor.height);
  form.append("mask_blur", $("mask_blur").value || 0);
  form.append("mask_grow", $("mask_grow").value || 0);
  const response = await postForm("/api/masks/effective", form);
  if (request !== overlayRequest) return; // a newer change is on its way
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showErrors(body.errors, body.message);
    editor.showEffective(null);
    delete $("overlay-canvas").dataset.pending;
    return;
  }
  clearErrors("mask");
  const bitmap = await createImageBitmap(await response.blob());
  if (request === overlayRequest) {
    editor.showEffective(bitmap);
    $("overlay-canvas").dataset.ready = String(request);
    delete $("overlay-canvas").dataset.pending;
  }
}
function bindOverlay() {
  for (const id of ["mask_blur", "mask_grow"]) $(id).addEventListener("change", scheduleOverlay);
}

// ----- outpaint: the new area shows in the overlay as soon as a side is set --------------
const SIDES = ["left", "right", "top", "bottom"];

export function outpaintSides() {
  const sides = {};
  for (const side of SIDES) {
    const value = Math.round(Number($(`outpaint_${side}`).value || 0));
    if (value) sides[side] = value;
  }
  return Object.keys(sides).length ? sides : null;
}

// Sides the server would refuse draw nothing: the field says why instead.
function outpaintProblem(sides) {
  const max = Number($("outpaint_left").max);
  const bad = Object.entries(sides || {}).find(([, v]) => !(v >= 0 && v <= max));
  return bad ? `${bad[0][0].toUpperCase()}${bad[0].slice(1)}: between 0 and ${max} pixels per side.` : null;
}

function outpaintChanged() {
  const sides = outpaintSides();
  const problem = outpaintProblem(sides);
  clearErrors("outpaint");
  if (problem) showErrors({ outpaint: [problem] });
  editor.setOutpaint(problem ? {} : sides || {});
  root.dispatchEvent(new Event("studio:outpaint")); // (the layers' overlay moves with the picture)
  scheduleOverlay();
}
function bindOutpaint() {
  for (const side of SIDES) $(`outpaint_${side}`).addEventListener("input", outpaintChanged);
}

// ----- the canvas or the result: one view ------------------------------------------------
export function showCanvas() {
  if (!$("compare").hidden) say("");
  $("compare").hidden = true;
  $("stage").hidden = false;
  $("result-panel").hidden = true;
  $("draw-tools").classList.remove("muted");
  $("layers-panel").classList.remove("muted");
  $("editor").classList.remove("showing-result");
}

// ----- settings ---------------------------------------------------------------------------
// Fields the fill engines (classical, LaMa) ignore: shown muted and disabled, and not sent (so
// a value left there from a diffusion job cannot refuse a fill job). Not the prompt: its words
// can name what to remove ("remove the cup"); the model picker is the diffusers engine's (below).
const DIFFUSION_ONLY = FILL_ENGINE_UNUSED.filter((id) => id !== "prompt" && id !== "model" && $(id));
function engineChanged() {
  const fill = FILL_ENGINES.includes($("engine").value);
  $("classical-note").hidden = !fill;
  $("fill-engine-name").textContent = $("engine").value;
  for (const id of DIFFUSION_ONLY) {
    $(id).closest(".field").classList.toggle("muted", fill);
    $(id).disabled = fill;
  }
  // The model picker and the add-ons belong to the engine that runs a model (not a fill one).
  if ($("model")) {
    $("model-field").hidden = fill;
    $("model").disabled = fill;
  }
  if ($("lora-field")) $("lora-field").hidden = fill;
  if ($("ip-adapter-field")) $("ip-adapter-field").hidden = fill;
  if ($("controlnet")) {
    const off = fill;
    $("controlnet-field").classList.toggle("muted", off);
    $("controlnet").disabled = off;
    $("controlnet_scale").disabled = off;
  }
}
function bindSettings() {
  $("engine").addEventListener("change", engineChanged);
  engineChanged();

  // The IP-Adapter's reference slot takes a picture dropped on it, as its file input takes one
  // chosen (the image drop zone is elsewhere: a drop here never replaces the image).
  const referenceSlot = $("ip-adapter-field");
  if (referenceSlot) {
    referenceSlot.addEventListener("dragover", (e) => { e.preventDefault(); referenceSlot.classList.add("over"); });
    referenceSlot.addEventListener("dragleave", () => referenceSlot.classList.remove("over"));
    referenceSlot.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      referenceSlot.classList.remove("over");
      if (e.dataTransfer.files.length) $("ip-reference-input").files = e.dataTransfer.files;
    });
  }
  $("denoising_strength").addEventListener("input", (e) => { $("denoising_value").value = e.target.value; });

  // Prompts: a live count against the limit, so nothing is cut without notice.
  for (const counter of document.querySelectorAll("[data-counter-for]")) {
    const field = $(counter.dataset.counterFor);
    const update = () => {
      const full = field.value.length >= field.maxLength;
      counter.textContent = `${field.value.length} / ${field.maxLength}${full ? " · the limit: longer text is cut" : ""}`;
      counter.classList.toggle("full", full);
    };
    field.addEventListener("input", update);
    update();
  }
  $("seed-random").addEventListener("change", (e) => { $("seed").disabled = e.target.checked; });
}

// "Split into layers" (issue 80): the picture sent to POST /api/layers/split (a layer model of
// the library, Qwen-Image-Layered), followed like any job (studio/job.js: progress, Cancel),
// and its RGBA layers (bottom up: the background first) made the canvas' layers, each one's
// alpha its mask (white = regenerated where it is opaque, the studio's polarity), named
// "Background", "Layer 2", "Layer 3"… with no prompt; the layers there before are replaced,
// once the user says so. The panel shows the control only where the server has a layer model.
// Nothing happens on import: studio.js calls initSplit().

import { editor, input } from "./canvas.js";
import { $, clearErrors, say, showErrors } from "./dom.js";
import { submitJob } from "./job.js";
import { hasLayers, layersRestore } from "./layers.js";

// The request's fields and the slots under the control that show their errors (the server's
// words; a field with no slot on the page, the picture's or the model's with one layer model
// installed or none left, goes to the status line as it is said).
const SLOTS = {
  layers: "split_layers",
  prompt: "split_prompt",
  num_inference_steps: "split_steps",
  resolution: "split_resolution",
  model: "split_model",
};

function showSplitErrors(body) {
  const errors = {};
  for (const [field, messages] of Object.entries(body.errors || {})) {
    const slot = SLOTS[field] && document.querySelector(`[data-error-for="${SLOTS[field]}"]`);
    const key = slot ? SLOTS[field] : "non_field_errors";
    errors[key] = [...(errors[key] || []), ...messages];
  }
  showErrors(errors, body.message);
}

const layerName = (index) => (index ? `Layer ${index + 1}` : "Background");

// An RGBA layer as a mask the editor paints: its alpha, white on black, the picture's size.
async function maskOfAlpha(blob) {
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [editor.width, editor.height];
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const alpha = px[i + 3];
    px[i] = px[i + 1] = px[i + 2] = alpha;
    px[i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  return canvas;
}

// The job's outputs, read from this server (the path of each URL: the page's own origin).
async function layerMasks(urls) {
  return Promise.all(urls.map(async (url) => {
    const { pathname, search } = new URL(url, location.href);
    const response = await fetch(pathname + search, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`a layer could not be read (${response.status})`);
    return maskOfAlpha(await response.blob());
  }));
}

async function split() {
  clearErrors();
  if (!input.imageBlob) { showErrors({ image: ["Choose an image first."] }); return; }
  const count = $("split-layers").value;
  // Asked before anything is sent: the layers there now are replaced by the split's.
  if (hasLayers() || editor.hasPaint()) {
    const what = hasLayers() ? "the layers you have" : "the mask you painted";
    if (!window.confirm(`Split into ${count} layers? They replace ${what}.`)) return;
  }
  const picture = input.imageBlob; // the picture the layers are made for
  const form = new FormData();
  form.append("image", picture, input.imageName || "image");
  form.append("layers", count);
  const prompt = $("split-prompt").value.trim();
  if (prompt) form.append("prompt", prompt);
  if ($("split-steps").value) form.append("num_inference_steps", $("split-steps").value);
  form.append("resolution", $("split-resolution").value);
  if ($("split-model")) form.append("model", $("split-model").value);
  form.append("wait", "false");
  const onDone = async (id, message) => {
    if (input.imageBlob !== picture) {
      say("The split has finished, for the picture open before: its layers are in the history.");
      return;
    }
    say("Reading the layers…");
    let masks;
    try {
      masks = await layerMasks(message.images || []);
    } catch (error) {
      say(`The split's layers could not be read: ${error.message}.`, "error");
      return;
    }
    layersRestore(masks.map((mask, index) => ({
      name: layerName(index), prompt: "", picture: mask, hidden: false, active: false,
    })));
    say(`Split into ${masks.length} layers, the background at the bottom: each one's mask is where it is opaque. `
      + "Give a layer a prompt and Generate to repaint it, or move, hide or delete it.");
  };
  await submitJob("/api/layers/split", form, $("split-start"), {
    sending: "the picture", what: "split", onDone, onErrors: showSplitErrors,
  });
}

export function initSplit() {
  if (!$("split-start")) return; // no layer model on this server: no control
  $("split-start").addEventListener("click", split);
}

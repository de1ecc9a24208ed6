// The studio's job: submit the form, watch progress on the websocket, cancel.

import { postFormWithProgress, postJson, reconnectDelay, wsUrl } from "../http.js";
import { currentMask, input, outpaintSides, showCanvas } from "./canvas.js";
import { $, FILL_ENGINES, clearErrors, say, showErrors } from "./dom.js";
import { chosenLoras } from "./loras.js";
import { layeredJob } from "./layers.js";
import { editsByWords, referencePictures } from "./model-controls.js";
import { showResult, shownResult } from "./results.js";
import { queuedText } from "../status-badge.js";

// The job followed; ``upload``: the AbortController of a submission still being sent (``sent``
// once its body is all out: the server may have queued it, so Cancel then waits for the
// answer, ``cancelOnAnswer``, and cancels the job it names).
// ``what`` names the job in its failure ("The generation failed: …"); ``onDone(id, message)``
// takes its result where it is no picture to show (a split's layers), else showResult.
const job = { generationId: null, socket: null, finished: false, upload: null, sent: false, cancelOnAnswer: false,
  what: "generation", onDone: null };

// ----- generate, progress, cancel --------------------------------------------------------
$("generate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  if (!input.imageBlob) { showErrors({ image: ["Choose an image first."] }); return; }
  // With layers: each layer's mask and prompt, and no mask of its own (the union is the area).
  const layered = input.maskMode === "draw" ? await layeredJob() : null;
  if (layered?.problem) { say(layered.problem, "error"); return; }
  const mask = layered ? null : await currentMask();
  const outpaint = outpaintSides();
  if (layered && outpaint) {
    say("A job with layers takes no outpaint: set the outpaint sides to 0, or delete the layers.", "error");
    return;
  }
  // Without a mask, words still make a job: an edit model's, or a fill engine's "remove the
  // cup" (the server finds the cup with a selection model, or answers what to install, as
  // the API does).
  const words = FILL_ENGINES.includes($("engine").value) && $("prompt").value.trim();
  if (!layered && !mask && !outpaint && !editsByWords() && !words) {
    say(input.maskMode === "draw"
      ? "Nothing to regenerate yet: paint over the area to change (it turns red), or set outpaint pixels, then Generate."
      : "Nothing to regenerate yet: choose a mask PNG above, or set outpaint pixels, then Generate.", "error");
    return;
  }
  const form = new FormData();
  form.append("image", input.imageBlob, "image");
  if (mask) {
    form.append("mask", mask.blob, "mask.png");
    form.append("mask_mode", mask.mode);
    form.append("invert_mask", mask.invert);
  }
  if (layered) {
    form.append("layers", JSON.stringify(layered.layers));
    layered.masks.forEach((blob, index) => form.append("layer_masks", blob, `layer-${index + 1}.png`));
    form.append("mask_mode", "white_inpaints"); // (editor.toBlob's polarity)
    form.append("invert_mask", false);
    form.append("samples", "1"); // a job with layers makes one picture (the field says so)
  }
  if (outpaint) form.append("outpaint", JSON.stringify(outpaint));
  for (const picture of referencePictures()) form.append("reference_images", picture, picture.name);
  // An IP-Adapter with its reference picture (the diffusers engine; hidden otherwise).
  if ($("ip_adapter") && $("ip_adapter").value && !$("ip-adapter-field").hidden) {
    form.append("ip_adapter", JSON.stringify({ name: $("ip_adapter").value,
      scale: Number($("ip_adapter_scale").value) }));
    const picture = $("ip-reference-input").files[0];
    if (picture) form.append("reference_images", picture, picture.name);
  }
  for (const name of ["engine", "prompt", "negative_prompt", "denoising_strength", "num_inference_steps",
    "guidance_scale", "samples", "mask_blur", "mask_grow", "inpaint_area", "padding", "scheduler", "clip_skip", "model"]) {
    // Not sent: what the engine ignores (disabled) and what the chosen model has no use for
    // (hidden, studio/model-controls.js).
    if ($(name) && !$(name).disabled && !$(name).closest(".field")?.hidden) {
      form.append(name, $(name).value);
    }
  }
  if (!$("soft").disabled && !$("soft").closest(".field").hidden && $("soft").checked) {
    form.append("soft", "true");
  }
  for (const [name, value] of [["speed", "fast"], ["background", "transparent"]]) {
    if (!$(name).disabled && !$(name).closest(".field").hidden && $(name).checked) {
      form.append(name, value);
    }
  }
  // Erase: the server's best remover runs on the mask grown by the dilation, whatever engine,
  // model and additions are chosen (they are an inpaint's: not sent).
  const erasing = $("erase").checked;
  if (erasing) {
    form.append("mode", "erase");
    form.append("dilate_pixels", $("dilate_pixels").value);
    for (const name of ["engine", "model", "reference_images", "ip_adapter"]) form.delete(name);
  }
  const loras = erasing ? null : chosenLoras();
  if (loras) form.append("loras", loras);
  if (!erasing && $("controlnet") && $("controlnet").value && !$("controlnet").disabled) {
    form.append("controlnet", JSON.stringify({ name: $("controlnet").value,
      conditioning_scale: Number($("controlnet_scale").value) }));
  }
  form.append("seed", $("seed-random").checked ? "-1" : $("seed").value);
  form.append("wait", "false");
  await submitJob("/api/img2img", form, $("generate"));
});

// Send a job (its ``button`` disabled meanwhile), then follow it; its errors by their fields
// (``onErrors(body)`` places them itself). While its pictures are sent the progress line says
// how far the upload is (a phone's photo takes seconds), and Cancel stops the upload (once it
// is all sent, the job it queued). ``what`` and ``onDone``: as ``job``'s (studio/split.js).
export async function submitJob(url, form, button,
  { sending = "the pictures", what = "generation", onDone = null, onErrors = null } = {}) {
  button.disabled = true;
  job.upload = new AbortController();
  Object.assign(job, { sent: false, cancelOnAnswer: false });
  showProgress();
  setProgress(0, `Sending ${sending}…`);
  const mb = (bytes) => (bytes / 1048576).toFixed(1);
  try {
    const response = await postFormWithProgress(url, form, {
      signal: job.upload.signal,
      onProgress: (sent, total) => {
        if (!total) return;
        const percent = Math.floor((100 * sent) / total);
        setProgress(percent, `Sending ${sending} · ${percent}% · ${mb(sent)} of ${mb(total)} MB`);
      },
      onSent: () => {
        job.sent = true;
        setProgress(100, `Sent · the server is reading ${sending}…`);
      },
    });
    job.upload = null;
    const body = await response.json();
    if (!response.ok) {
      $("progress-panel").hidden = true;
      if (onErrors) onErrors(body);
      else showErrors(body.errors, body.message);
      return;
    }
    Object.assign(job, { what, onDone });
    startWatching(body.id);
    if (job.cancelOnAnswer) await cancelJob();
  } catch (error) {
    $("progress-panel").hidden = true;
    if (error.name === "AbortError") say("Cancelled: the job was not sent.");
    else showErrors({}, `The request failed: ${error}`);
  } finally {
    job.upload = null;
    button.disabled = false;
  }
}

// "Upscale": the result on show upscaled as a new job, followed like a generation; its
// result replaces this one on the screen (and both are in the history).
$("upscale").addEventListener("click", async () => {
  const shown = shownResult();
  if (!shown.id) return;
  clearErrors();
  const form = new FormData();
  form.append("generation", shown.id);
  form.append("index", shown.index);
  form.append("factor", $("upscale-factor").value);
  form.append("upscaler", $("upscaler").value);
  form.append("wait", "false");
  await submitJob("/api/upscale", form, $("upscale"), { sending: "the request" });
});

function setProgress(percent, text) {
  clearInterval(saving.timer);
  $("progress").value = percent;
  $("progress").dataset.percent = String(percent);
  $("progress-text").textContent = text;
}

// After the last step the worker encodes and stores the result (seconds for a large photo):
// said as such, with the seconds it has taken so far, not as "100% · about 0 s left".
const saving = { timer: null };
function showSaving() {
  if (saving.timer && $("progress-text").textContent.startsWith("Saving")) return;
  const started = Date.now();
  setProgress(100, "Saving the result…");
  saving.timer = setInterval(() => {
    $("progress-text").textContent = `Saving the result… ${Math.round((Date.now() - started) / 1000)} s`;
  }, 1000);
}

function showProgress() {
  showCanvas();
  say("");
  $("progress-panel").hidden = false;
  $("progress-panel").scrollIntoView({ block: "nearest" });
  $("cancel").disabled = false;
  $("preview").hidden = true;
}

function startWatching(id) {
  job.generationId = id;
  job.finished = false;
  showProgress();
  setProgress(0, "Queued");
  connect(id);
}

function connect(id) {
  if (job.socket) job.socket.close();
  const socket = new WebSocket(wsUrl(`/ws/generations/${id}/`));
  job.socket = socket;
  socket.onmessage = (event) => handleMessage(id, JSON.parse(event.data));
  socket.onclose = (event) => {
    // Dropped before the end: reconnect; the snapshot on connect catches up.
    if (job.generationId === id && !job.finished) {
      setTimeout(() => connect(id), reconnectDelay(event, 1000));
    }
  };
}

function handleMessage(id, message) {
  if (id !== job.generationId) return;
  const lastStepDone = message.total && message.step >= message.total;
  if (message.type === "progress") {
    const eta = message.eta_seconds != null ? ` · about ${Math.ceil(message.eta_seconds)} s left` : "";
    if (lastStepDone) showSaving();
    else setProgress(message.percent, `Step ${message.step} / ${message.total} · ${message.percent}%${eta}`);
    if (message.preview) { $("preview").src = message.preview; $("preview").hidden = false; }
  } else if (message.type === "status") {
    if (message.status === "queued") {
      setProgress(0, queuedText(message));
    } else if (message.status === "running" && lastStepDone) {
      showSaving(); // (a reconnect's snapshot after the last step)
    } else if (message.status === "running") {
      setProgress(message.percent || 0, message.total ? `Step ${message.step} / ${message.total}` : "Running");
    } else if (message.status === "succeeded" && message.images) {
      finished(id, message);
    } else if (message.status === "failed") {
      fail(message.error || "The generation failed.");
    } else if (message.status === "cancelled") {
      cancelled();
    }
  } else if (message.type === "completed") {
    finished(id, message);
  } else if (message.type === "failed") {
    fail(message.message);
  } else if (message.type === "cancelled") {
    cancelled();
  } else if (message.type === "deleted") {
    fail("The generation was deleted.");
  }
}

function stopWatching() {
  clearInterval(saving.timer);
  job.finished = true;
  if (job.socket) job.socket.close();
  $("cancel").disabled = true;
}

function fail(text) {
  stopWatching();
  setProgress(0, `Failed: ${text}`);
  say(`The ${job.what} failed: ${text}`, "error");
}

function cancelled() {
  stopWatching();
  setProgress(0, "Cancelled");
  say("Cancelled.");
}

$("cancel").addEventListener("click", () => {
  if (job.upload && job.sent) { // all sent: cancelled once the answer names the job
    job.cancelOnAnswer = true;
    $("cancel").disabled = true;
    setProgress(100, "Cancelling…");
  } else if (job.upload) {
    job.upload.abort(); // still sending: nothing queued yet
  } else {
    cancelJob();
  }
});

async function cancelJob() {
  if (!job.generationId) return;
  const response = await postJson(`/api/generations/${job.generationId}/cancel/`);
  if (response.ok) cancelled();
  else setProgress(0, (await response.json()).message);
}

function finished(id, message) {
  stopWatching();
  setProgress(100, "Done");
  $("progress-panel").hidden = true;
  if (job.onDone) {
    job.onDone(id, message);
    return;
  }
  say("Done: drag the slider to compare; “Back to the mask” to keep editing.");
  showResult(id, message);
}

// The controls the chosen model uses, with its defaults: the steps and guidance of its family
// (value and range), and no negative prompt, scheduler or clip skip where its family has none
// (FLUX.1 Fill): those fields are hidden, so they are not sent. Each model option carries its
// family's figures (GET /api/models, "accepts"); without a model picker the form carries the
// server's model's.

import { $ } from "./dom.js";

const SOMETIMES = { negative: "negative_prompt", schedulers: "scheduler", clipSkip: "clip_skip" };

function apply() {
  const spec = $("model")?.selectedOptions[0]?.dataset || $("generate-form").dataset;
  if (!spec.steps) return;
  const steps = $("num_inference_steps");
  Object.assign(steps, { max: spec.maxSteps, value: spec.steps });
  const guidance = $("guidance_scale");
  Object.assign(guidance, { min: spec.guidanceMin, max: spec.guidanceMax, value: spec.guidance });
  for (const [key, id] of Object.entries(SOMETIMES)) {
    if ($(id)) $(id).closest(".field").hidden = spec[key] === "false";
  }
}

$("model")?.addEventListener("change", apply);
apply();

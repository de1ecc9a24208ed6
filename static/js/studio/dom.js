// Shared by the studio's modules: element lookup, the status line, and errors shown next to
// their fields (or in the status line when their field is not on screen).

export const $ = (id) => document.getElementById(id);

// The engines that fill from the picture, take no model and follow no prompt (the server's
// engine.parameters.FILL_ENGINES, handed over by the page).
export const FILL_ENGINES = $("studio").dataset.fillEngines.split(",");
// The fields they do not use (engine.parameters.FILL_ENGINE_UNUSED, handed over by the page).
export const FILL_ENGINE_UNUSED = $("studio").dataset.fillEngineUnused.split(",");

// ----- the status line above the canvas (an aria-live region) ----------------------------
export function say(text, kind = "info") {
  const line = $("studio-message");
  line.textContent = text;
  line.className = `message ${kind}`;
  if (text) bringIntoView(line);
}

function bringIntoView(element) {
  const box = element.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) element.scrollIntoView({ block: "center" });
}

function visibleSlot(field) {
  const slot = document.querySelector(`[data-error-for="${field}"]`);
  if (!slot || slot.closest("[hidden]")) return null;
  const details = slot.closest("details");
  if (details) details.open = true;
  return slot;
}

const label = (field) => field.charAt(0).toUpperCase() + field.slice(1).replaceAll("_", " ");

// ----- errors next to their fields -------------------------------------------------------
export function showErrors(errors, message) {
  clearErrors();
  const unplaced = [];
  let first = null;
  for (const [field, messages] of Object.entries(errors || {})) {
    const slot = visibleSlot(field);
    if (slot) {
      slot.textContent = messages.join(" ");
      first = first || slot;
    } else {
      unplaced.push(field === "non_field_errors" ? messages.join(" ") : `${label(field)}: ${messages.join(" ")}`);
    }
  }
  if (unplaced.length || (!first && message)) say(unplaced.join(" ") || message, "error");
  if (first) bringIntoView(first);
}

export function clearErrors(field) {
  const selector = field ? `[data-error-for="${field}"]` : "[data-error-for]";
  document.querySelectorAll(selector).forEach((el) => { el.textContent = ""; });
  if (!field && $("studio-message").classList.contains("error")) say("");
}

// A form field set as if typed or chosen (its listeners told); a select's value it has no
// option for, or no value, leaves it as it is ("Edit again", "Open project").
export function setField(id, value) {
  const field = $(id);
  if (!field || value === undefined || value === null) return;
  if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === String(value))) return;
  field.value = value;
  field.dispatchEvent(new Event("input", { bubbles: true }));
  field.dispatchEvent(new Event("change", { bubbles: true }));
}

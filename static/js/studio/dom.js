// Shared by the studio's modules: element lookup and errors shown next to their fields.

export const $ = (id) => document.getElementById(id);

// ----- errors next to their fields -------------------------------------------------------
export function showErrors(errors, message) {
  clearErrors();
  let placed = false;
  for (const [field, messages] of Object.entries(errors || {})) {
    const slot = document.querySelector(`[data-error-for="${field}"]`);
    if (slot) { slot.textContent = messages.join(" "); placed = true; }
  }
  if (!placed && message) document.querySelector('[data-error-for="non_field_errors"]').textContent = message;
}

export function clearErrors(field) {
  const selector = field ? `[data-error-for="${field}"]` : "[data-error-for]";
  document.querySelectorAll(selector).forEach((el) => { el.textContent = ""; });
}

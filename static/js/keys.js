// The one rule for the keyboard shortcuts of the studio (the canvas's keys, Space to pan, the
// result's arrows): keys typed into a text field go to the field, never to a shortcut. A
// slider, a checkbox or a button is no text field: the shortcuts work while one has focus.
export function isTextEntry(element) {
  if (!element) return false;
  if (element.isContentEditable || ["TEXTAREA", "SELECT"].includes(element.tagName)) return true;
  return element.tagName === "INPUT" && !["range", "checkbox", "radio", "button", "file"].includes(element.type);
}

// The studio's keyboard: one table of shortcuts that the studio's modules add to
// (addShortcut: studio/canvas.js, studio/results.js), one window keydown listener reading it
// (and one keyup, for a key held: Space) that studio.js starts (startShortcuts), and the one
// rule that keeps keys typed into a field the field's.

// The rule: keys typed into a text field go to the field, never to a shortcut; a focused slider
// keeps its arrows (the compare's moves its divider). A slider, a checkbox or a button is no
// text field: the other shortcuts work while one has focus.
function isTextEntry(element) {
  if (!element) return false;
  if (element.isContentEditable || ["TEXTAREA", "SELECT"].includes(element.tagName)) return true;
  return element.tagName === "INPUT" && !["range", "checkbox", "radio", "button", "file"].includes(element.type);
}

function goesToTheField(event) {
  return isTextEntry(event.target) || (event.target.type === "range" && event.key?.startsWith("Arrow"));
}

// Which modifiers a shortcut answers with: "any" (held or not), "ctrl" (Ctrl or ⌘ held; Shift
// and Alt may be too), "none" (no Ctrl, ⌘ or Alt: Ctrl+L, Ctrl+R, Ctrl+S and the like stay the
// browser's; Shift may be held, its capital is the same key).
const MODIFIERS = {
  any: () => true,
  ctrl: (event) => event.ctrlKey || event.metaKey,
  none: (event) => !(event.ctrlKey || event.metaKey || event.altKey),
};

const shortcuts = [];

// A shortcut: ``key`` (the event's key, either case: "z", "[", "ArrowLeft") or ``code`` (a key
// without a character: "Space"); ``modifiers`` (above); ``when`` (the view it belongs to is on
// screen); ``run`` on the key going down; ``release`` (optional) on its coming up, whatever has
// the focus then; ``preventDefault``: the browser does nothing else with the key (on its coming
// up too, for a shortcut with a release).
export function addShortcut({ key, code, modifiers = "any", when = () => true, run, release, preventDefault = false }) {
  shortcuts.push({ key: key?.toLowerCase(), code, modifiers: MODIFIERS[modifiers], when, run, release, preventDefault });
}

// (A browser's autofill sends a keydown without a key: it matches nothing.)
const sameKey = (shortcut, event) => (shortcut.code ? event.code === shortcut.code : event.key?.toLowerCase() === shortcut.key);
const claims = (shortcut, event) => !goesToTheField(event) && sameKey(shortcut, event) && shortcut.modifiers(event) && shortcut.when();

// One listener for each direction, on the capture phase: no control's own handler can keep a
// shortcut's key from it (Space never presses a focused button: the browser clicks a button on
// Space's keyup, so both are stopped).
export function startShortcuts() {
  window.addEventListener("keydown", (event) => {
    const shortcut = shortcuts.find((s) => claims(s, event));
    if (!shortcut) return;
    if (shortcut.preventDefault) event.preventDefault();
    shortcut.run(event);
  }, true);
  window.addEventListener("keyup", (event) => {
    for (const shortcut of shortcuts.filter((s) => s.release && sameKey(s, event))) {
      if (shortcut.preventDefault && claims(shortcut, event)) event.preventDefault();
      shortcut.release(event);
    }
  }, true);
}

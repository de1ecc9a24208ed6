// The studio: image in, mask drawn or uploaded, generate with live progress, result out.
// One module per concern: studio/canvas.js (image, mask, overlay, settings), studio/job.js
// (submit, progress, cancel), studio/results.js (before / after, samples, continue from one),
// studio/reopen.js ("Edit again" from the history).

import "./studio/canvas.js";
import "./studio/job.js";
import "./studio/model-controls.js";
import "./studio/results.js";
import "./studio/reopen.js";

"""AUTOMATIC1111's web UI API (also Forge's and SD.Next's): ``POST /sdapi/v1/img2img``,
``GET /sdapi/v1/progress``, ``POST /sdapi/v1/interrupt`` and ``/skip``, ``GET /sdapi/v1/
sd-models``, ``/samplers``, ``/schedulers``, ``/options``, ``/scripts``, ``POST /sdapi/v1/
png-info``.

Kept from A1111: JSON with base64 images (a data URL or bare; white = inpaint), its field
names and meanings (``mask_blur``, ``inpainting_fill``, ``inpaint_full_res`` with its padding,
``inpainting_mask_invert``, ``denoising_strength``, ``seed`` -1 random, ``sampler_name`` and
``scheduler``, ``steps``, ``cfg_scale``, ``batch_size`` x ``n_iter``, ``width`` / ``height``
with ``resize_mode``, ``override_settings.sd_model_checkpoint`` and
``CLIP_stop_at_last_layers``, ControlNet units in ``alwayson_scripts``), the answer
``{"images", "parameters", "info"}`` with ``info`` a JSON string, and HTTP Basic with the key
as the password. What does not run here is accepted and named in ``info.ignored``.

One module a part: ``img2img`` (the request and its answer), ``extras`` (upscaling, PNG info),
``status`` (the caller's jobs), ``lists`` (what clients read at start-up), ``base`` (what every
view shares).
"""

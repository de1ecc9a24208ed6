"""Compatibility endpoints: each module only translates a foreign API's request into a native
generation (``services.generations.generation_create``) and the native result into the
foreign answer (``inpainting.answers``); submitting and waiting is ``api.common``'s."""

"""Compatibility endpoints: each module only translates a foreign API's request into a native
generation (``services.generation_create``) and the native result into the foreign answer."""

"""The JSON bodies that describe a generation, one module per API flavour (native, ModelsLab,
FooocusAPI, deep-image.ai). They live below the views, so the views, the websocket consumers
and the webhooks (which send the same body a client would have been answered with) all build
them here, and nothing below ``api`` imports a view."""

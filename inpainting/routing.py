from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/generations/", consumers.UserGenerationsConsumer.as_asgi()),
    path("ws/generations/<uuid:generation_id>/", consumers.GenerationConsumer.as_asgi()),
]

from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import User


class SignUpForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username",)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=50, label="Name", help_text="Where the key will be used.")
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Expires after (days)",
        help_text="Leave empty for a key that does not expire.",
    )

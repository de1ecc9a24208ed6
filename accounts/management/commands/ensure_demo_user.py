from django.core.management.base import BaseCommand

from accounts.services import demo_user_ensure


class Command(BaseCommand):
    help = "Create a demo user when no user exists yet; prints its credentials once."

    def handle(self, *args, **options):
        user, password = demo_user_ensure()
        if password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the demo user: username {user.username!r}, password {password!r} "
                    "(shown only this once)."
                )
            )

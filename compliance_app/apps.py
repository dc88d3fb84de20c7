from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance_app"
    verbose_name = "Erasure and export requests"

    def ready(self) -> None:
        # From here on every payload written through the codec is encrypted with its person's data key.
        from compliance_app.keys import KEYRING
        from memory_admin.codec import install_keyring

        install_keyring(KEYRING)

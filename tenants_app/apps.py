from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants_app"
    verbose_name = "Tenants and API keys"

from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance_app"
    verbose_name = "Erasure and export requests"

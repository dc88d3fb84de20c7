from django.apps import AppConfig


class LanggraphConfig(AppConfig):
    name = "langgraph_app"
    verbose_name = "LangGraph"

"""The live service: FastAPI app, camera pipelines, alerts, websockets, viewer (a later issue)."""

"""The live service (FastAPI app, camera pipelines, alerts, websockets, viewer): built by the live-service issue."""

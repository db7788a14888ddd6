"""The request pipeline: request ids, client addresses, problem details, health endpoints."""

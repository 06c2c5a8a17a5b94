"""HTTP plumbing shared by every feature: endpoints, auth, problems, OpenAPI, health."""

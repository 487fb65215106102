"""AWS Panorama packaging: graph, node packages, build, deploy and rollback."""

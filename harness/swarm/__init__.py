"""Docker Swarm for the swarm backend: the nodes and the sites they serve
(`harness.swarm.nodes`) and a two-node swarm on one machine for tests
(`harness.swarm.lab`)."""

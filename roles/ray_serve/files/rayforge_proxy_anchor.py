"""A Serve deployment that only holds a place on every node.

Serve runs an HTTP proxy on the head and on nodes that hold at least one replica. A node
whose replicas all landed elsewhere would not answer on Serve's port, so a load balancer
in front of every node would see it as down. One zero-CPU replica of this deployment per
node (max_replicas_per_node: 1, num_replicas: number of nodes) keeps a proxy on each.
It has no route and answers nothing.
"""

from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_replicas_per_node=1)
class ProxyAnchor:
    def check_health(self) -> None:
        """Nothing can go wrong here; Serve's default check is enough."""


app = ProxyAnchor.bind()

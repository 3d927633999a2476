"""The Ray Serve wrapper, without starting Ray."""

import pytest

serve = pytest.importorskip("ray.serve")

from ray.serve.deployment import Application  # noqa: E402
from ray.serve.schema import ServeDeploySchema  # noqa: E402

from salience import deployment  # noqa: E402
from salience.models import AppSettings  # noqa: E402
from serve_config import APP_NAME, DEFAULT_HTTP_PORT, example_config  # noqa: E402


def test_deployment_name_and_seed_defaults() -> None:
    scorer = deployment.SalienceScorer
    assert scorer.name == "SalienceScorer" == deployment.DEPLOYMENT_NAME
    assert scorer.num_replicas == 2
    assert scorer.ray_actor_options == {"num_cpus": 1, "num_gpus": 0, "memory": 1024**3}


def test_builder_returns_application_with_validated_args() -> None:
    app = deployment.app_builder({"max_items": "500", "model_name": "m"})
    assert isinstance(app, Application)
    assert deployment.parse_args({"max_items": "500"}) == AppSettings(max_items=500)
    assert deployment.parse_args({}) == AppSettings()
    assert deployment.parse_args(None) == AppSettings()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"max_itemz": 5}, "max_itemz: Extra inputs are not permitted"),
        ({"max_items": 0}, "max_items: Input should be greater than or equal to 1"),
        ({"max_body_bytes": "lots"}, "max_body_bytes: Input should be a valid integer"),
        ({"model_name": ""}, "model_name: String should have at least 1 character"),
    ],
)
def test_builder_rejects_bad_args(args: dict, fragment: str) -> None:
    with pytest.raises(
        ValueError, match=r"invalid args for salience\.deployment:app_builder"
    ) as err:
        deployment.app_builder(args)
    assert fragment in str(err.value)


def test_replica_class_builds_app_and_passes_health_check() -> None:
    """Drive our class through a replica's lifecycle (init -> build app -> health), no Ray."""
    import asyncio

    # `@serve.ingress()` subclasses our class; test ours (the wrapper's async __del__
    # would warn when garbage-collected outside a replica).
    wrapper = deployment.SalienceScorer.func_or_class
    user_cls = next(c for c in wrapper.__mro__ if "__serve_build_asgi_app__" in vars(c))

    replica = user_cls({"max_items": 3})
    app = replica.__serve_build_asgi_app__()
    assert app.state.settings.max_items == 3
    asyncio.run(replica.check_health())


def test_health_check_fails_before_app_is_built() -> None:
    import asyncio

    wrapper = deployment.SalienceScorer.func_or_class
    user_cls = next(c for c in wrapper.__mro__ if "__serve_build_asgi_app__" in vars(c))
    with pytest.raises(RuntimeError, match="not been built"):
        asyncio.run(user_cls().check_health())


def test_example_serve_config_validates() -> None:
    config = ServeDeploySchema.model_validate(example_config())
    (app,) = config.applications
    assert app.name == APP_NAME
    assert app.import_path == deployment.IMPORT_PATH
    assert app.route_prefix == "/"
    (dep,) = app.deployments
    assert dep.name == deployment.DEPLOYMENT_NAME
    assert dep.num_replicas == 2
    assert dep.ray_actor_options.memory == 1024**3
    assert config.http_options.host == "0.0.0.0"
    assert config.http_options.port == DEFAULT_HTTP_PORT
    # The rendered args must be accepted by the builder.
    deployment.app_builder(app.args)


def _assert_known_keys(data: dict, model: type, where: str) -> None:
    fields = model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    unknown = set(data) - known
    assert not unknown, f"{where}: unknown keys {sorted(unknown)}"


def test_example_serve_config_has_no_unknown_keys() -> None:
    """ServeDeploySchema silently ignores unknown keys (see next test), so check them."""
    from ray.serve.schema import DeploymentSchema, RayActorOptionsSchema, ServeApplicationSchema

    config = example_config()
    _assert_known_keys(config, ServeDeploySchema, "config")
    for app in config["applications"]:
        _assert_known_keys(app, ServeApplicationSchema, "applications[]")
        for dep in app["deployments"]:
            _assert_known_keys(dep, DeploymentSchema, "deployments[]")
            _assert_known_keys(dep["ray_actor_options"], RayActorOptionsSchema, "ray_actor_options")


def test_serve_schema_ignores_unknown_keys() -> None:
    """Documents a Ray 2.60 quirk: typos in the Serve config are dropped, not rejected."""
    config = example_config()
    config["applications"][0]["deployments"][0]["num_replicaz"] = 5
    config["applications"][0]["deployments"][0]["ray_actor_options"]["num_cpu"] = 5
    parsed = ServeDeploySchema.model_validate(config)
    dumped = parsed.applications[0].deployments[0].model_dump(exclude_unset=True)
    assert "num_replicaz" not in dumped
    assert "num_cpu" not in dumped["ray_actor_options"]

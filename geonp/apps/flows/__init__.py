"""End-to-end workflows run by recipes: each module has ``run(base, **options) -> report``."""

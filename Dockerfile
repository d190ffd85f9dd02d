# carebridge service image: slim Python, non-root, `carebridge serve` as entrypoint.
# Builds from the repository with nothing fetched but Python packages from PyPI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system carebridge && useradd --system --gid carebridge --home-dir /srv/carebridge --create-home carebridge

WORKDIR /srv/carebridge/app
COPY pyproject.toml README.md ./
COPY mappings ./mappings
COPY adapter ./adapter
RUN pip install ".[postgres]" && rm -rf build *.egg-info

USER carebridge
WORKDIR /srv/carebridge
ENV CAREBRIDGE_DB=sqlite:////srv/carebridge/carebridge.sqlite
EXPOSE 8080
ENTRYPOINT ["carebridge", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8080"]

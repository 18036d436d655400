# One image for every labloop service; the command picks the role (see docker-compose.yml).

# Build stage: the project's wheel, built from the source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY workers ./workers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Final stage: that wheel and its dependencies installed, the way a user installs labloop;
# no source tree in the image, so the services run exactly what the wheel ships.
FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/labloop-*.whl && rm -rf /wheels
# the services run as the lab staff's user, so files they write on the host are theirs
ARG LABLOOP_UID=1000
ARG LABLOOP_GID=1000
RUN groupadd --gid "$LABLOOP_GID" labloop \
    && useradd --uid "$LABLOOP_UID" --gid "$LABLOOP_GID" --home-dir /lab --create-home labloop
USER labloop
ENV LABLOOP_HOME=/lab
WORKDIR /lab
VOLUME ["/lab"]
ENTRYPOINT ["labloop"]

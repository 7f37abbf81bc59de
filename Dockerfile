FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 GATEHOUSE_VAR_DIR=/var/lib/gatehouse
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY console ./console
COPY identity ./identity
COPY provisioning ./provisioning
COPY synclog ./synclog
COPY templates ./templates
COPY manage.py ./
RUN pip install --no-cache-dir -c constraints.txt . \
 && mkdir -p /var/lib/gatehouse \
 && SECRET_KEY=build-only python manage.py collectstatic --noinput
EXPOSE 8000
# The web server as `manage.py serve` starts it (processes and threads from GATEHOUSE_WEB_*).
CMD ["python", "manage.py", "serve", "--web-only", "--bind=0.0.0.0", "--port=8000"]

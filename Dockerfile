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
CMD ["gunicorn", "console.wsgi:application", "--bind=0.0.0.0:8000", "--workers=4", "--threads=4"]

"""``edge-app label setup``: everything a Ground Truth *streaming* bounding-box labeling job needs, via boto3.

1. SNS **input topic** (Ground Truth subscribes to it) and **output topic** (a message per labeled image);
2. the input topic's policy lets ``s3.amazonaws.com`` publish, but only for our bucket and account
   (``aws:SourceArn`` / ``aws:SourceAccount``: no other bucket can inject tasks);
3. an S3 event notification on the upload prefix: ``s3:ObjectCreated:*`` with a ``.jpg`` suffix filter, so the
   collector's sidecar JSON files never become labeling tasks. Existing notifications of the bucket are kept
   (the API replaces the whole configuration, so it is read, merged, written);
4. CORS on the bucket (the worker UI loads the images from the browser; Ground Truth requires it);
5. label category config and worker task template uploaded under ``labeling.config_prefix``;
6. ``CreateLabelingJob`` with ``InputConfig.DataSource.SnsDataSource``, ``OutputConfig.SnsTopicArn``, no
   ``StoppingConditions`` (a streaming job runs until stopped or idle for 10 days), the region's built-in
   bounding-box pre-annotation and consolidation Lambdas.

Every step is idempotent: re-running finds the topics, replaces our notification by its id, and reports an
existing job instead of failing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from edge_app.errors import EdgeAppError
from training.flywheel.settings import FlywheelSettings, LabelingSettings
from training.flywheel.task_template import label_category_config, worker_template

log = logging.getLogger(__name__)

NOTIFICATION_ID = "edge-app-flywheel-groundtruth"
POLICY_SID = "AllowS3ObjectCreatedFromFlywheelBucket"

# Built-in Ground Truth Lambdas for bounding boxes: one account per region (SageMaker API reference,
# HumanTaskConfig.PreHumanTaskLambdaArn / AnnotationConsolidationLambdaArn).
GT_LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414", "us-east-2": "266458841044", "us-west-2": "081040173940",
    "ca-central-1": "918755190332", "eu-west-1": "568282634449", "eu-west-2": "487402164563",
    "eu-central-1": "203001061592", "ap-northeast-1": "477331159723", "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007", "ap-southeast-1": "377565633583", "ap-southeast-2": "454466003867",
}


def bounding_box_lambdas(region: str) -> tuple[str, str]:
    """(PreHumanTaskLambdaArn, AnnotationConsolidationLambdaArn) of the built-in bounding-box task."""
    account = GT_LAMBDA_ACCOUNTS.get(region)
    if account is None:
        raise EdgeAppError(f"region: Ground Truth bounding-box jobs are not available in {region!r} "
                           f"(regions: {', '.join(sorted(GT_LAMBDA_ACCOUNTS))})")
    base = f"arn:aws:lambda:{region}:{account}:function:"
    return base + "PRE-BoundingBox", base + "ACS-BoundingBox"


def account_of(role_arn: str) -> str:
    return role_arn.split(":")[4]


def topic_policy(topic_arn: str, bucket: str, account: str, existing: str | None = None) -> str:
    """The topic's policy with our statement added or replaced (other statements kept)."""
    doc = json.loads(existing) if existing else {"Version": "2012-10-17", "Statement": []}
    statements = [s for s in doc.get("Statement", []) if s.get("Sid") != POLICY_SID]
    statements.append({
        "Sid": POLICY_SID, "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "SNS:Publish", "Resource": topic_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
                      "StringEquals": {"aws:SourceAccount": account}},
    })
    doc["Statement"] = statements
    return json.dumps(doc)


def ensure_topics(sns: Any, labeling: LabelingSettings, bucket: str, account: str) -> tuple[str, str]:
    """Create (or find: ``CreateTopic`` is idempotent) both topics; set the input topic's policy."""
    input_arn = sns.create_topic(Name=labeling.input_topic)["TopicArn"]
    output_arn = sns.create_topic(Name=labeling.output_topic)["TopicArn"]
    current = sns.get_topic_attributes(TopicArn=input_arn)["Attributes"].get("Policy")
    sns.set_topic_attributes(TopicArn=input_arn, AttributeName="Policy",
                             AttributeValue=topic_policy(input_arn, bucket, account, current))
    return input_arn, output_arn


def ensure_notification(s3: Any, bucket: str, prefix: str, topic_arn: str) -> dict:
    """Add/replace our ObjectCreated -> SNS notification, keeping the bucket's other notifications."""
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    topics = [t for t in config.get("TopicConfigurations", []) if t.get("Id") != NOTIFICATION_ID]
    ours = {"Id": NOTIFICATION_ID, "TopicArn": topic_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix.strip("/") + "/"},
                                               {"Name": "suffix", "Value": ".jpg"}]}}}
    config["TopicConfigurations"] = [*topics, ours]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return ours


def ensure_cors(s3: Any, bucket: str) -> bool:
    """Add the GET rule Ground Truth's worker UI needs, unless a rule already allows GET from any origin."""
    from botocore.exceptions import ClientError

    try:
        rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
            raise
        rules = []
    if any("GET" in r.get("AllowedMethods", []) and "*" in r.get("AllowedOrigins", []) for r in rules):
        return False
    rules.append({"AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "AllowedHeaders": [],
                  "ExposeHeaders": ["Access-Control-Allow-Origin"]})
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    return True


def upload_task_files(s3: Any, settings: FlywheelSettings) -> tuple[str, str]:
    """Label category config + worker template; returns their s3:// URIs."""
    labeling = settings.labeling
    assert labeling is not None
    prefix = f"{labeling.config_prefix.strip('/')}/{labeling.job_name}"
    files = {f"{prefix}/label-categories.json": (label_category_config(labeling.classes), "application/json"),
             f"{prefix}/bounding-box.liquid.html": (worker_template(labeling.task_title, labeling.task_description),
                                                    "text/html")}
    for key, (body, content_type) in files.items():
        s3.put_object(Bucket=settings.bucket, Key=key, Body=body.encode(), ContentType=content_type)
    keys = list(files)
    return f"s3://{settings.bucket}/{keys[0]}", f"s3://{settings.bucket}/{keys[1]}"


def labeling_job_request(settings: FlywheelSettings, *, input_topic: str, output_topic: str, label_config_uri: str,
                         template_uri: str) -> dict:
    labeling = settings.labeling
    assert labeling is not None
    pre, consolidation = bounding_box_lambdas(settings.region)
    return {
        "LabelingJobName": labeling.job_name,
        "LabelAttributeName": labeling.label_attribute,
        "InputConfig": {
            "DataSource": {"SnsDataSource": {"SnsTopicArn": input_topic}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation",
                                                      "FreeOfAdultContent"]},
        },
        "OutputConfig": {"S3OutputPath": f"s3://{settings.bucket}/{labeling.output_prefix.strip('/')}/",
                         "SnsTopicArn": output_topic},
        "RoleArn": labeling.role_arn,
        "LabelCategoryConfigS3Uri": label_config_uri,
        "HumanTaskConfig": {
            "WorkteamArn": labeling.workteam_arn,
            "UiConfig": {"UiTemplateS3Uri": template_uri},
            "PreHumanTaskLambdaArn": pre,
            "TaskKeywords": ["bounding box", "image", "tray", "packaging"],
            "TaskTitle": labeling.task_title,
            "TaskDescription": labeling.task_description,
            "NumberOfHumanWorkersPerDataObject": labeling.workers_per_object,
            "TaskTimeLimitInSeconds": labeling.task_time_limit_s,
            "TaskAvailabilityLifetimeInSeconds": labeling.task_availability_s,
            "MaxConcurrentTaskCount": labeling.max_concurrent_tasks,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": consolidation},
        },
        "Tags": [{"Key": "edge-app", "Value": "flywheel"}],
    }


@dataclass
class SetupResult:
    input_topic: str
    output_topic: str
    notification: dict
    cors_added: bool
    label_config_uri: str
    template_uri: str
    request: dict
    job_arn: str | None = None
    job_status: str = "not created (dry run)"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"input_topic": self.input_topic, "output_topic": self.output_topic,
                "notification_prefix": self.notification["Filter"]["Key"]["FilterRules"][0]["Value"],
                "cors_added": self.cors_added, "label_config": self.label_config_uri, "template": self.template_uri,
                "labeling_job": self.request["LabelingJobName"], "job_arn": self.job_arn,
                "job_status": self.job_status}


def create_job(sagemaker: Any, request: dict) -> tuple[str, str]:
    """``(arn, status)``; an existing job of that name is reported, not re-created."""
    from botocore.exceptions import ClientError

    try:
        return sagemaker.create_labeling_job(**request)["LabelingJobArn"], "created"
    except ClientError as exc:
        err = exc.response.get("Error", {})
        if err.get("Code") in ("ResourceInUse", "ResourceInUseException"):
            found = sagemaker.describe_labeling_job(LabelingJobName=request["LabelingJobName"])
            return found["LabelingJobArn"], f"exists ({found['LabelingJobStatus']})"
        raise EdgeAppError(f"sagemaker: create_labeling_job {request['LabelingJobName']}: {err.get('Code')}: "
                           f"{err.get('Message')}") from None


def setup(settings: FlywheelSettings, *, s3: Any, sns: Any, sagemaker: Any | None) -> SetupResult:
    """Create every resource; ``sagemaker=None`` stops before the job (dry run: the request is returned)."""
    if settings.labeling is None:
        raise EdgeAppError("labeling: section missing in the flywheel settings (role_arn, workteam_arn, ...)")
    labeling = settings.labeling
    account = account_of(labeling.role_arn)
    input_topic, output_topic = ensure_topics(sns, labeling, settings.bucket, account)
    notification = ensure_notification(s3, settings.bucket, settings.upload_prefix, input_topic)
    cors = ensure_cors(s3, settings.bucket)
    label_uri, template_uri = upload_task_files(s3, settings)
    request = labeling_job_request(settings, input_topic=input_topic, output_topic=output_topic,
                                   label_config_uri=label_uri, template_uri=template_uri)
    result = SetupResult(input_topic, output_topic, notification, cors, label_uri, template_uri, request)
    if sagemaker is not None:
        result.job_arn, result.job_status = create_job(sagemaker, request)
    return result

//! What goes back on the wire: each service's success and error envelopes,
//! and the HTTP status of each error code (from core's error catalogue).

use amishare_core::{catalogue, ops, Error, ErrorKind};
use serde_json::json;

use crate::xml::Xml;

/// The XML namespace of EC2 answers (API version 2016-11-15).
pub(crate) const EC2_XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
/// The STS API version and its XML namespace.
pub(crate) const STS_VERSION: &str = "2011-06-15";
pub(crate) const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The EC2 Auto Scaling API version and its XML namespace (`docs/spec/production.md` §C1.7).
pub(crate) const AUTOSCALING_VERSION: &str = "2011-01-01";
pub(crate) const AUTOSCALING_XMLNS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";
/// The content type of KMS requests and responses.
pub(crate) const KMS_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The three services, told apart by the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// EC2: the query protocol, XML answers.
    Ec2,
    /// KMS: JSON 1.1 with `X-Amz-Target: TrentService.<Operation>`.
    Kms,
    /// STS: the query protocol, XML answers.
    Sts,
    /// EC2 Auto Scaling: the query protocol, XML answers.
    AutoScaling,
}

impl Service {
    /// The name of the service, for logs and as SigV4 credential scopes name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Kms => "kms",
            Service::Sts => "sts",
            Service::AutoScaling => "autoscaling",
        }
    }

    /// The service as core's operation table and error catalogue name it.
    pub(crate) fn ops(self) -> ops::Service {
        match self {
            Service::Ec2 => ops::Service::Ec2,
            Service::Kms => ops::Service::Kms,
            Service::Sts => ops::Service::Sts,
            Service::AutoScaling => ops::Service::AutoScaling,
        }
    }
}

/// An error as the service reports it: a code, a message and, where the code
/// alone does not decide it, the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub(crate) code: String,
    pub(crate) message: String,
    status: Option<u16>,
}

impl WireError {
    /// An error with this code and message, its status decided by the code.
    pub(crate) fn new(code: &str, message: impl Into<String>) -> WireError {
        WireError {
            code: code.to_owned(),
            message: message.into(),
            status: None,
        }
    }

    /// Overrides the status the code would have.
    pub(crate) fn with_status(mut self, status: u16) -> WireError {
        self.status = Some(status);
        self
    }

    /// An error of the simulation as `service` reports it. The simulation
    /// speaks AWS's codes; an error without one is a fault of the
    /// simulation or of the server, reported as the service's internal error.
    pub(crate) fn from_sim(service: Service, err: &Error) -> WireError {
        if let Some(code) = err.code() {
            return WireError::new(code, err.message());
        }
        let code = match err.kind() {
            ErrorKind::InvalidInput => catalogue::invalid_input_code(service.ops()),
            _ => catalogue::internal_code(service.ops()),
        };
        WireError::new(code, err.message())
    }

    /// The HTTP status AWS answers this error with.
    pub(crate) fn status(&self, service: Service) -> u16 {
        if let Some(status) = self.status {
            return status;
        }
        catalogue::status(service.ops(), &self.code)
    }
}

/// EC2's and STS's `MissingParameter`.
pub(crate) fn missing_parameter(name: &str) -> WireError {
    WireError::new(
        "MissingParameter",
        format!("The request must contain the parameter {name}"),
    )
}

/// EC2's `InvalidParameterValue`, in its usual wording.
pub(crate) fn invalid_value(name: &str, value: &str, why: &str) -> WireError {
    let message = format!("Value ({value}) for parameter {name} is invalid. {why}");
    WireError::new("InvalidParameterValue", message.trim_end())
}

/// A response body with its status and content type.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Reply {
    /// A successful EC2 answer: `<ActionResponse>` with the request ID first.
    pub(crate) fn ec2(action: &str, request_id: &str, inner: Xml) -> Reply {
        let body = Xml::document(&format!("{action}Response"), EC2_XMLNS, |xml| {
            xml.leaf("requestId", request_id);
            xml.append(inner);
        });
        Reply::xml(200, body)
    }

    /// A successful STS answer: `<ActionResponse><ActionResult>…` then the
    /// response metadata.
    pub(crate) fn sts(action: &str, request_id: &str, inner: Xml) -> Reply {
        let body = Xml::document(&format!("{action}Response"), STS_XMLNS, |xml| {
            xml.element(&format!("{action}Result"), |xml| xml.append(inner));
            xml.element("ResponseMetadata", |xml| xml.leaf("RequestId", request_id));
        });
        Reply::xml(200, body)
    }

    /// A successful Auto Scaling answer: `<ActionResponse>`, with
    /// `<ActionResult>` for an operation that has output, then the response
    /// metadata.
    pub(crate) fn autoscaling(action: &str, request_id: &str, inner: Xml, result: bool) -> Reply {
        let body = Xml::document(&format!("{action}Response"), AUTOSCALING_XMLNS, |xml| {
            if result {
                xml.element(&format!("{action}Result"), |xml| xml.append(inner));
            }
            xml.element("ResponseMetadata", |xml| xml.leaf("RequestId", request_id));
        });
        Reply::xml(200, body)
    }

    /// A successful KMS answer; operations without output send an empty body.
    pub(crate) fn kms(body: Option<serde_json::Value>) -> Reply {
        Reply {
            status: 200,
            content_type: KMS_CONTENT_TYPE,
            body: body.map(|value| value.to_string()).unwrap_or_default(),
        }
    }

    /// The error envelope of `service`.
    pub(crate) fn error(service: Service, request_id: &str, err: &WireError) -> Reply {
        let status = err.status(service);
        match service {
            Service::Ec2 => {
                let body = Xml::document("Response", "", |xml| {
                    xml.element("Errors", |xml| {
                        xml.element("Error", |xml| {
                            xml.leaf("Code", &err.code);
                            xml.leaf("Message", &err.message);
                        });
                    });
                    xml.leaf("RequestID", request_id);
                });
                Reply::xml(status, body)
            }
            Service::Sts | Service::AutoScaling => {
                let xmlns = if service == Service::Sts {
                    STS_XMLNS
                } else {
                    AUTOSCALING_XMLNS
                };
                let body = Xml::document("ErrorResponse", xmlns, |xml| {
                    xml.element("Error", |xml| {
                        let kind = if status < 500 { "Sender" } else { "Receiver" };
                        xml.leaf("Type", kind);
                        xml.leaf("Code", &err.code);
                        xml.leaf("Message", &err.message);
                    });
                    xml.leaf("RequestId", request_id);
                });
                Reply::xml(status, body)
            }
            Service::Kms => Reply {
                status,
                content_type: KMS_CONTENT_TYPE,
                body: json!({ "__type": err.code, "message": err.message }).to_string(),
            },
        }
    }

    fn xml(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/xml;charset=UTF-8",
            body,
        }
    }
}

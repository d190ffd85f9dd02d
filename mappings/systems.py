"""Canonical URLs: identifier systems, code systems and extensions used on the wire.

One place for every URI carebridge writes, so a reader, a writer and the compliance
engine can never disagree about a spelling. National URIs are used where one is known;
the rest live under the project's canonical base.
"""

from __future__ import annotations

BASE = "http://carebridge.se/fhir"

# --- Person and organisation identifiers (HL7 Sweden base profiles) -------------------
PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER = "http://electronichealth.se/identifier/samordningsnummer"
#: Inera's variant, accepted on input and normalised to PERSONNUMMER.
PERSONNUMMER_INERA = "https://terminology.hl7.se/sid/se-personnummer"
HSA_ID = "urn:oid:1.2.752.29.4.19"
#: Organisationsnummer (HL7 Sweden base `organizationIdentifier` slice).
ORGANISATIONSNUMMER = "urn:oid:2.5.4.97"

# OIDs used by RIV-TA for patientId/type.
RIV_PERSONNUMMER_OID = "1.2.752.129.2.1.3.1"
RIV_SAMORDNINGSNUMMER_OID = "1.2.752.129.2.1.3.3"

# --- Business identifiers minted by the municipality (namespaced by the project) -----
SID_DECISION = f"{BASE}/sid/beslut"
SID_INSATS = f"{BASE}/sid/insats"
SID_TASK = f"{BASE}/sid/uppdrag"
SID_GOAL = f"{BASE}/sid/mal"
SID_CAREPLAN = f"{BASE}/sid/plan"
SID_CASE = f"{BASE}/sid/arende"
SID_LOCAL_STAFF = f"{BASE}/sid/personal"
#: Idempotency key carried in meta.tag for resources whose identifier is not searchable
#: everywhere (Provenance has none; SEKMET cannot search Goal.identifier).
TAG_BUSINESS_KEY = f"{BASE}/CodeSystem/business-key"

# --- Code systems of the project -----------------------------------------------------
CS_INSATS_TYPE = f"{BASE}/CodeSystem/insats-type"
CS_LEGAL_BASIS = f"{BASE}/CodeSystem/legal-basis"
CS_DECISION_KIND = f"{BASE}/CodeSystem/decision-kind"
CS_STATUS_REASON = f"{BASE}/CodeSystem/status-reason"
CS_CARE_SERVICE_TYPE = f"{BASE}/CodeSystem/riv-care-service-type"
CS_CARE_PLAN_TYPE = f"{BASE}/CodeSystem/riv-care-plan-type"
CS_HUVUDMAN = f"{BASE}/CodeSystem/huvudman"
CS_LEGAL_DOMAIN = f"{BASE}/CodeSystem/legal-domain"
CS_TIME_STRICTNESS = f"{BASE}/CodeSystem/time-strictness"
CS_ORGANISATION_KIND = f"{BASE}/CodeSystem/organisation-kind"
CS_LOCAL_INSATS = f"{BASE}/CodeSystem/local-insats"
CS_SECURITY_LABEL_SE = "http://hl7.se/fhir/ig/base/CodeSystem/SecurityLabel"
CS_KVA = "urn:oid:1.2.752.116.1.3.2.3.6"
CS_ICF = "http://hl7.org/fhir/sid/icf"
CS_IBIC_LIFE_AREA = f"{BASE}/CodeSystem/ibic-life-area"

# --- FHIR core code systems ----------------------------------------------------------
CS_TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
CS_PROVENANCE_ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
CS_PROVENANCE_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
UCUM = "http://unitsofmeasure.org"

# --- Extensions ----------------------------------------------------------------------
EXT_REQUEST_STATUS_REASON = "http://hl7.org/fhir/StructureDefinition/request-statusReason"
EXT_PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"
EXT_FEE_EXEMPT = f"{BASE}/StructureDefinition/fee-exempt"
EXT_TIME_STRICTNESS = f"{BASE}/StructureDefinition/time-strictness"
EXT_FRAMEWORK_DECISION = f"{BASE}/StructureDefinition/framework-decision"
EXT_INSATS_DESCRIPTION = f"{BASE}/StructureDefinition/insats-description"
EXT_GOAL_LIFE_AREA = f"{BASE}/StructureDefinition/life-area"

# --- Profiles (StructureDefinitions kept in adapter/compliance/profiles) --------------
PROFILE_DECISION_SERVICE_REQUEST = f"{BASE}/StructureDefinition/cb-decision-servicerequest"
PROFILE_PROVIDER_TASK = f"{BASE}/StructureDefinition/cb-provider-task"
PROFILE_DECISION_CAREPLAN = f"{BASE}/StructureDefinition/cb-decision-careplan"
PROFILE_GOAL = f"{BASE}/StructureDefinition/cb-goal"

# --- RIV-TA clinicalprocess:logistics:logistics 3 (GetCareServices 2.0, GetCarePlans 2.0) ---
#: The HSA-id OID without its `urn:oid:` prefix (as RIV writes it in II/root).
RIV_HSA_OID = "1.2.752.29.4.19"
#: A RIV documentId is unique within its source system only, so the identifier system is this
#: prefix + "/" + the percent-encoded sourceSystemHSAId (the assigner carries the HSA-id too).
SID_RIV_DOCUMENT = f"{BASE}/sid/riv-document"
#: careContactId (vårdkontakt) of a RIV document, as a logical Encounter identifier.
SID_RIV_CARE_CONTACT = f"{BASE}/sid/riv-care-contact"
#: II whose root is not an OID: system = this prefix + "/" + the percent-encoded root.
SID_RIV_II_ROOT = f"{BASE}/sid/riv-ii-root"
#: ASTM E1762 signature types (FHIR R4 signature-type value set).
CS_SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
SIGNATURE_VERIFICATION = "1.2.840.10065.1.12.1.5"
CS_MIME_TYPE = "urn:ietf:bcp:13"
EXT_DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
EXT_RIV_DOCUMENT_TITLE = f"{BASE}/StructureDefinition/riv-document-title"
EXT_RIV_DOCUMENT_TIME = f"{BASE}/StructureDefinition/riv-document-time"
EXT_RIV_APPROVED_FOR_PATIENT = f"{BASE}/StructureDefinition/riv-approved-for-patient"
EXT_RIV_NULLIFIED = f"{BASE}/StructureDefinition/riv-nullified"
EXT_RIV_SCOPE = f"{BASE}/StructureDefinition/riv-scope"
EXT_RIV_HOUSING = f"{BASE}/StructureDefinition/riv-housing"
EXT_RIV_CARE_UNIT = f"{BASE}/StructureDefinition/riv-care-unit"
EXT_RIV_CARE_GIVER = f"{BASE}/StructureDefinition/riv-care-giver"
EXT_RIV_CONTENT_ID = f"{BASE}/StructureDefinition/riv-content-id"
#: A raw value kept verbatim where the FHIR datatype cannot hold it (e.g. a CV code with spaces).
EXT_RIV_RAW = f"{BASE}/StructureDefinition/riv-raw"
#: II root kept verbatim where the identifier system alone would be ambiguous.
EXT_RIV_II_ROOT = f"{BASE}/StructureDefinition/riv-ii-root"
EXT_RIV_CODE_SYSTEM_NAME = f"{BASE}/StructureDefinition/riv-code-system-name"
#: The response's `result` (complex: resultCode, errorCode, logId, subCode, message) on Bundle.meta.
EXT_RIV_RESULT = f"{BASE}/StructureDefinition/riv-result"
#: An element present but empty in RIV (FHIR strings cannot be empty); valueString = RIV path.
EXT_RIV_EMPTY = f"{BASE}/StructureDefinition/riv-empty"
#: A foreign-namespace element (`xs:any ##other`) kept as XML (complex: path, xml).
EXT_RIV_FOREIGN = f"{BASE}/StructureDefinition/riv-foreign-xml"

# --- Compliance engine (adapter/compliance) ------------------------------------------
#: Names the check behind each OperationOutcome issue (invariant key or carebridge rule id).
CS_COMPLIANCE_RULE = f"{BASE}/CodeSystem/compliance-rule"
#: HL7 Sweden security label codes (CS_SECURITY_LABEL_SE) that withhold address and contact data.
SECURITY_SKYDDAD_FOLKBOKFORING = "skyddadFolkbokforing"
SECURITY_SEKRETESSMARKERING = "sekretessmarkering"

# --- SIP / SPU (mappings/sip.py) -----------------------------------------------------
SID_SIP = f"{BASE}/sid/sip"
SID_SIP_INTERVENTION = f"{BASE}/sid/sip-insats"
SID_SIP_NEED = f"{BASE}/sid/sip-behov"
SID_SIP_FOLLOW_UP = f"{BASE}/sid/sip-uppfoljning"
SID_CONSENT = f"{BASE}/sid/samtycke"
SID_RELATED_PERSON = f"{BASE}/sid/narstaende"
CS_SIP_ROLE = f"{BASE}/CodeSystem/sip-role"
CS_SIP_FOLLOW_UP = f"{BASE}/CodeSystem/sip-follow-up"
CS_DELIVERY_STATUS = f"{BASE}/CodeSystem/delivery-status"
CS_INTERVENTION_EFFECT = f"{BASE}/CodeSystem/intervention-effect"
CS_CONSENT_INFORMATION = f"{BASE}/CodeSystem/consent-information"
CS_CONSENT_POLICY = f"{BASE}/CodeSystem/consent-policy"
CS_GUARDIAN_KIND = f"{BASE}/CodeSystem/guardian-kind"
CS_WORKFLOW_FLAG = f"{BASE}/CodeSystem/workflow-flag"
CS_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CS_CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
CS_V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CS_V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CS_V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CS_V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CS_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CS_GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
LOINC = "http://loinc.org"
CS_NEED_CATEGORY = f"{BASE}/CodeSystem/need-category"
EXT_NEXT_FOLLOW_UP = f"{BASE}/StructureDefinition/next-follow-up"
PROFILE_SIP_CAREPLAN = f"{BASE}/StructureDefinition/cb-sip-careplan"
PROFILE_SIP_CARETEAM = f"{BASE}/StructureDefinition/cb-sip-careteam"
PROFILE_SIP_SERVICE_REQUEST = f"{BASE}/StructureDefinition/cb-sip-servicerequest"
PROFILE_SIP_FOLLOW_UP = f"{BASE}/StructureDefinition/cb-sip-follow-up"
PROFILE_CONSENT = f"{BASE}/StructureDefinition/cb-consent"

# --- Discharge events, lag 2017:612 (mappings/discharge.py, adapter/messaging) -------
SID_ENCOUNTER = f"{BASE}/sid/vardtillfalle"
CS_DISCHARGE_EVENT = f"{BASE}/CodeSystem/discharge-event"
CS_DISCHARGE_DESTINATION = f"{BASE}/CodeSystem/discharge-destination"
CS_MESSAGE_ACTIVITY = f"{BASE}/CodeSystem/message-activity"
CS_ACK_ERROR = f"{BASE}/CodeSystem/acknowledgement-error"
CS_PROVENANCE_ENTITY_ROLE = "http://hl7.org/fhir/provenance-entity-role"
EXT_EXPECTED_DISCHARGE = f"{BASE}/StructureDefinition/expected-discharge-date"
EXT_READY_FOR_DISCHARGE = f"{BASE}/StructureDefinition/ready-for-discharge"
EXT_SPU_NEEDED = f"{BASE}/StructureDefinition/spu-needed"
#: On a provider Task paused by an admission: the status it had, restored at discharge.
EXT_TASK_PAUSED_FROM = f"{BASE}/StructureDefinition/task-paused-from-status"
PROFILE_DISCHARGE_MESSAGE = f"{BASE}/StructureDefinition/cb-discharge-message"
PROFILE_DISCHARGE_MESSAGEHEADER = f"{BASE}/StructureDefinition/cb-discharge-messageheader"
PROFILE_DISCHARGE_ENCOUNTER = f"{BASE}/StructureDefinition/cb-discharge-encounter"
PROFILE_ACK_MESSAGE = f"{BASE}/StructureDefinition/cb-acknowledgement-message"
PROFILE_ACK_MESSAGEHEADER = f"{BASE}/StructureDefinition/cb-acknowledgement-messageheader"

# --- Genomförandeplan and rehabiliteringsplan (mappings/implementation_plan.py, mappings/rehab_plan.py) ---
SID_IMPLEMENTATION_PLAN = f"{BASE}/sid/genomforandeplan"
SID_PLAN_ACTIVITY = f"{BASE}/sid/planerad-aktivitet"
#: One planned contact of a genomförandeplan (its Task and, once it took place, its Encounter).
SID_CONTACT = f"{BASE}/sid/kontakt"
SID_ACKNOWLEDGEMENT = f"{BASE}/sid/kvittens"
SID_REHAB_PLAN = f"{BASE}/sid/rehabplan"
SID_REHAB_FINDING = f"{BASE}/sid/rehab-bedomning"
SID_REHAB_ACTION = f"{BASE}/sid/rehab-atgard"
SID_REHAB_FOLLOW_UP = f"{BASE}/sid/rehab-uppfoljning"
SID_REHAB_EVENT = f"{BASE}/sid/rehab-handelse"
SID_TRAINING_INSTRUCTION = f"{BASE}/sid/traningsinstruktion"
#: The vårdbegäran or remiss a rehab plan answers (logical reference from CarePlan.supportingInfo).
SID_REHAB_REFERRAL = f"{BASE}/sid/remiss"
CS_CONTACT_CHANNEL = f"{BASE}/CodeSystem/contact-channel"
CS_CONTACT_OUTCOME = f"{BASE}/CodeSystem/contact-outcome"
CS_DECLINED_REASON = f"{BASE}/CodeSystem/declined-reason"
CS_CONTACT_CHANGE_REASON = f"{BASE}/CodeSystem/contact-change-reason"
CS_CONTACT_DETAIL = f"{BASE}/CodeSystem/contact-detail"
CS_PLAN_ACTIVITY_TYPE = f"{BASE}/CodeSystem/plan-activity-type"
CS_PLAN_GOAL_TYPE = f"{BASE}/CodeSystem/plan-goal-type"
CS_PLAN_CARETEAM_ROLE = f"{BASE}/CodeSystem/plan-careteam-role"
CS_IMPLEMENTATION_PLAN_STATUS = f"{BASE}/CodeSystem/implementation-plan-status"
CS_ICF_COMPONENT = f"{BASE}/CodeSystem/icf-component"
CS_ICF_FACTOR_ROLE = f"{BASE}/CodeSystem/icf-factor-role"
CS_REHAB_ACTION_KIND = f"{BASE}/CodeSystem/rehab-action-kind"
CS_REHAB_ACTION_STATUS = f"{BASE}/CodeSystem/rehab-action-status"
CS_REHAB_FOLLOWUP_TRIGGER = f"{BASE}/CodeSystem/rehab-followup-trigger"
CS_REHAB_CLOSURE_REASON = f"{BASE}/CodeSystem/rehab-closure-reason"
CS_REHAB_CLOSURE_INFORMATION = f"{BASE}/CodeSystem/rehab-closure-information"
CS_GOAL_RELATIONSHIP_TYPE = "http://terminology.hl7.org/CodeSystem/goal-relationship-type"
CS_ENCOUNTER_CLASS = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: Time window (tidsfönster) of a planned activity: complex, sub-extensions `start` and `end` (valueTime).
EXT_TIME_WINDOW = f"{BASE}/StructureDefinition/time-window"
EXT_GOAL_RELATIONSHIP = "http://hl7.org/fhir/StructureDefinition/goal-relationship"
EXT_TASK_REPLACES = "http://hl7.org/fhir/StructureDefinition/task-replaces"
PROFILE_IMPLEMENTATION_PLAN_CAREPLAN = f"{BASE}/StructureDefinition/cb-implementation-plan-careplan"
PROFILE_IMPLEMENTATION_PLAN_CARETEAM = f"{BASE}/StructureDefinition/cb-implementation-plan-careteam"
PROFILE_PLAN_ACTIVITY = f"{BASE}/StructureDefinition/cb-plan-activity-servicerequest"
PROFILE_PLAN_GOAL = f"{BASE}/StructureDefinition/cb-plan-goal"
PROFILE_CONTACT_TASK = f"{BASE}/StructureDefinition/cb-contact-task"
PROFILE_CONTACT_ENCOUNTER = f"{BASE}/StructureDefinition/cb-contact-encounter"
PROFILE_ACKNOWLEDGEMENT = f"{BASE}/StructureDefinition/cb-goal-acknowledgement"
PROFILE_REHAB_CAREPLAN = f"{BASE}/StructureDefinition/cb-rehab-careplan"
PROFILE_REHAB_GOAL = f"{BASE}/StructureDefinition/cb-rehab-goal"
PROFILE_REHAB_CARETEAM = f"{BASE}/StructureDefinition/cb-rehab-careteam"
PROFILE_REHAB_ASSESSMENT = f"{BASE}/StructureDefinition/cb-rehab-assessment"
PROFILE_REHAB_FINDING = f"{BASE}/StructureDefinition/cb-rehab-finding"
PROFILE_REHAB_ACTION = f"{BASE}/StructureDefinition/cb-rehab-action"
PROFILE_REHAB_FOLLOW_UP = f"{BASE}/StructureDefinition/cb-rehab-follow-up"
PROFILE_REHAB_EVENT = f"{BASE}/StructureDefinition/cb-rehab-lifecycle-event"
PROFILE_TRAINING_INSTRUCTION = f"{BASE}/StructureDefinition/cb-training-instruction-task"

# --- Compliance: Swedish rules (adapter/compliance/swedish.py) ------------------------
#: Health-care tasks that matter for delegation (CodeSystem in adapter/compliance/profiles).
CS_HEALTH_CARE_TASK = f"{BASE}/CodeSystem/health-care-task"
#: Staff roles (profession) of a Practitioner/PractitionerRole, to tell care staff from licensed staff.
CS_STAFF_ROLE = f"{BASE}/CodeSystem/staff-role"

# --- AuditEvents (adapter/audit.py, adapter/api/access.py) ------------------------------
#: What an AuditEvent points at: the outbox's HMAC person key, an outbox message, carebridge itself.
SID_PERSON_KEY = f"{BASE}/sid/person-key"
SID_OUTBOX_MESSAGE = f"{BASE}/sid/outbox-message"
SID_SYSTEM = f"{BASE}/sid/system"
#: Callers that authenticated with a client certificate, and API requests (by request id).
SID_CLIENT_CERTIFICATE = f"{BASE}/sid/client-certificate"
SID_API_REQUEST = f"{BASE}/sid/api-request"
#: The carebridge action of an AuditEvent (transfer, reject, replay, edit, discard, access).
CS_AUDIT_ACTION = f"{BASE}/CodeSystem/audit-action"
#: DICOM controlled terminology (AuditEvent.type 110106 Export, agent roles).
CS_DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"
CS_RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
CS_AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
CS_AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
CS_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
CS_SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

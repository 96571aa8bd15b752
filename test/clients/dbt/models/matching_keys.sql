select
    user_id,
    sha256(phone_number) as phone_sha256,
    sha256(email) as email_sha256
from {{ ref('contact_points') }}
